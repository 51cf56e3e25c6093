#pragma once
#include <napi.h>

#include <memory>

#include "binding/command_ring.h"

namespace unicc {
// The ring's methods for the bridge server (see ring_binding.cc).
Napi::Object ring_object(Napi::Env env, std::shared_ptr<CommandRing> ring);
}  // namespace unicc
