#pragma once
// A rendezvous store served by JavaScript (any of the TypeScript stores, elastic guards included)
// to world formation on another thread: each call runs on the JavaScript thread and the calling
// thread waits for its promise.
#include <napi.h>

#include "world/store.h"

namespace unicc {

class JsStore final : public RendezvousStore {
 public:
  // call(op, key, arg): op "set" (arg a Buffer) resolves when stored; op "get" (arg the timeout in
  // ms) resolves to the value as a Buffer. Made on the JavaScript thread; patience_ms bounds a
  // set (a get: its own timeout), beyond which the caller stops waiting for JavaScript.
  JsStore(Napi::Env env, Napi::Function call, int patience_ms);
  ~JsStore() override;
  JsStore(const JsStore&) = delete;
  JsStore& operator=(const JsStore&) = delete;

  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key, int timeout_ms) override;

 private:
  std::string call(const char* op, const std::string& key, const std::string* value, int timeout_ms);
  Napi::ThreadSafeFunction tsfn_;
  int patience_ms_;
};

}  // namespace unicc
