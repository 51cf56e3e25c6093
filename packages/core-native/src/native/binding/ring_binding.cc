// The JavaScript face of a command ring (command_ring.h), made by Comm.openRing in addon.cc:
//   ring.map(id, path, bytes)  maps a client's file (as mapShared) for both transports: the
//                              ArrayBuffer for requests over the socket, the ring's table for its own
//   ring.unmap(id)             forgets buffer id (requests in flight keep their mapping)
//   ring.stop()                a promise that settles once what the client submitted is done
#include "binding/ring_binding.h"

#include <stdexcept>

namespace unicc {

namespace {

size_t positive_bytes(const Napi::Value& v) {
  const double want = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(want > 0) || want != static_cast<double>(static_cast<size_t>(want)))
    throw Napi::RangeError::New(v.Env(), "ring: bytes must be a positive integer");
  return static_cast<size_t>(want);
}

uint64_t buffer_id(const Napi::Value& v) {
  const double id = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(id >= 0) || id != static_cast<double>(static_cast<uint64_t>(id))) throw Napi::TypeError::New(v.Env(), "ring: buffer id must be a non-negative integer");
  return static_cast<uint64_t>(id);
}

}  // namespace

Napi::Object ring_object(Napi::Env env, std::shared_ptr<CommandRing> ring) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("map", Napi::Function::New(env, [ring](const Napi::CallbackInfo& info) -> Napi::Value {
          Napi::Env env = info.Env();
          const uint64_t id = buffer_id(info[0]);
          if (!info[1].IsString()) throw Napi::TypeError::New(env, "ring.map(id, path, bytes): path must be a string");
          std::shared_ptr<Mapping> m;
          try {
            m = map_shared_file(info[1].As<Napi::String>(), positive_bytes(info[2]));
          } catch (const std::runtime_error& e) {
            throw Napi::Error::New(env, e.what());
          }
          ring->add_buffer(id, m);
          return array_buffer_of(env, std::move(m));
        }));
  o.Set("unmap", Napi::Function::New(env, [ring](const Napi::CallbackInfo& info) -> Napi::Value {
          return Napi::Boolean::New(info.Env(), ring->remove_buffer(buffer_id(info[0])));
        }));
  o.Set("stop", Napi::Function::New(env, [ring](const Napi::CallbackInfo& info) -> Napi::Value {
          Napi::Env env = info.Env();
          auto deferred = std::make_shared<Napi::Promise::Deferred>(env);
          auto tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                                    "unicc-ring-stop", 0, 1);
          ring->stop([tsfn, deferred]() mutable {
            tsfn.BlockingCall([deferred](Napi::Env, Napi::Function) { deferred->Resolve(deferred->Env().Undefined()); });
            tsfn.Release();
          });
          return deferred->Promise();
        }));
  return o;
}

}  // namespace unicc
