#include "binding/js_store.h"

#include <chrono>
#include <future>
#include <memory>

#include "common/error.h"

namespace unicc {
namespace {

// Settled once, from the JavaScript thread; shared, so that a promise settling after its caller
// gave up finds it still there.
struct Outcome {
  std::promise<std::string> value;
  void fail(const std::string& why) { value.set_exception(std::make_exception_ptr(CommError(why))); }
};

std::string message_of(const Napi::Value& v) {
  if (v.IsObject() && v.As<Napi::Object>().Get("message").IsString())
    return v.As<Napi::Object>().Get("message").As<Napi::String>().Utf8Value();
  return v.ToString().Utf8Value();
}

// Slack beyond the store's own timeout before a caller stops waiting for the JavaScript thread.
constexpr int kJsSlackMs = 10000;

}  // namespace

JsStore::JsStore(Napi::Env env, Napi::Function call, int patience_ms)
    : tsfn_(Napi::ThreadSafeFunction::New(env, call, "unicc-world-store", 0, 1)), patience_ms_(patience_ms) {}

JsStore::~JsStore() { tsfn_.Release(); }

void JsStore::set(const std::string& key, const std::string& value) { call("set", key, &value, patience_ms_); }

std::string JsStore::get(const std::string& key, int timeout_ms) { return call("get", key, nullptr, timeout_ms); }

std::string JsStore::call(const char* op, const std::string& key, const std::string* value, int timeout_ms) {
  auto outcome = std::make_shared<Outcome>();
  std::future<std::string> result = outcome->value.get_future();
  // Copies only: the JavaScript thread may come to this after the caller stopped waiting.
  const bool setting = value != nullptr;
  const std::string bytes = setting ? *value : std::string();
  const napi_status queued = tsfn_.BlockingCall([=](Napi::Env env, Napi::Function fn) {
    try {
      const Napi::Value arg = setting ? Napi::Buffer<char>::Copy(env, bytes.data(), bytes.size()).As<Napi::Value>()
                                      : Napi::Number::New(env, timeout_ms).As<Napi::Value>();
      Napi::Object promise = fn.Call({Napi::String::New(env, op), Napi::String::New(env, key), arg}).As<Napi::Object>();
      auto resolved = Napi::Function::New(env, [outcome](const Napi::CallbackInfo& info) {
        if (info[0].IsBuffer()) {
          const auto b = info[0].As<Napi::Buffer<char>>();
          outcome->value.set_value(std::string(b.Data(), b.Length()));
        } else {
          outcome->value.set_value("");
        }
      });
      auto rejected = Napi::Function::New(env, [outcome](const Napi::CallbackInfo& info) { outcome->fail(message_of(info[0])); });
      promise.Get("then").As<Napi::Function>().Call(promise, {resolved, rejected});
    } catch (const Napi::Error& e) {
      outcome->fail(e.Message());
    }
  });
  if (queued != napi_ok) throw CommError(std::string("the store's ") + op + " of '" + key + "' could not reach JavaScript (closing?)");
  if (result.wait_for(std::chrono::milliseconds(timeout_ms + kJsSlackMs)) != std::future_status::ready)
    throw CommError(std::string("the store's ") + op + " of '" + key + "' got no answer from JavaScript");
  return result.get();
}

}  // namespace unicc
