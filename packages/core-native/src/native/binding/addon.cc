// Node-API binding: one Comm object per world. Collectives run on the communicator's thread;
// promises settle back on the JavaScript thread through a thread-safe function.
#include <napi.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "binding/command_ring.h"
#include "binding/js_store.h"
#include "binding/ring_binding.h"
#include "binding/shared_memory.h"
#include "common/error.h"
#include "memory/user_buffer.h"
#include "communicator.h"
#include "engine/engine.h"
#include "world/formation.h"

namespace unicc {
namespace {

// A blocking call's wait for `left` completions (the first error wins).
struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  size_t left = 1;
  std::string error;

  void done(const std::string& e) {
    std::lock_guard<std::mutex> lock(mu);
    if (!e.empty() && error.empty()) error = e;
    if (--left == 0) cv.notify_all();
  }
  const std::string& wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return left == 0; });
    return error;
  }
};

struct Completion {
  std::optional<Napi::Promise::Deferred> deferred;  // made only for a call that returns unfinished
  Napi::Reference<Napi::Value> keep_alive;           // the caller's arrays must outlive the collective
  std::string error;
};

DType dtype_of(Napi::Env env, napi_typedarray_type type, const char* what) {
  switch (type) {
    case napi_float32_array: return DType::F32;
    case napi_float64_array: return DType::F64;
    case napi_int32_array: return DType::I32;
    case napi_bigint64_array: return DType::I64;
    default:
      throw Napi::TypeError::New(env, std::string(what) +
                                              " must be a Float32Array, Float64Array, Int32Array or BigInt64Array");
  }
}

DType dtype_of(const Napi::TypedArray& a, const char* what) { return dtype_of(a.Env(), a.TypedArrayType(), what); }

class CommWrap : public Napi::ObjectWrap<CommWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Comm",
                       {InstanceMethod("setPeers", &CommWrap::SetPeers), InstanceMethod("formWorld", &CommWrap::FormWorld),
                        InstanceMethod("topology", &CommWrap::GetTopology), InstanceMethod("submit", &CommWrap::Submit),
                        InstanceMethod("startEngine", &CommWrap::StartEngine),
                        InstanceMethod("submitNamed", &CommWrap::SubmitNamed),
                        InstanceMethod("submitNamedSync", &CommWrap::SubmitNamedSync),
                        InstanceMethod("stopEngine", &CommWrap::StopEngine),
                        InstanceMethod("engineSettings", &CommWrap::EngineSettings),
                        InstanceMethod("engineTuning", &CommWrap::EngineTuning),
                        InstanceMethod("openRing", &CommWrap::OpenRing),
                        InstanceMethod("clientLane", &CommWrap::ClientLane),
                        InstanceMethod("close", &CommWrap::Close)});
  }

  explicit CommWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CommWrap>(info) {
    Napi::Env env = info.Env();
    const Napi::Object o = info[0].As<Napi::Object>();
    Options opt;
    opt.rank = o.Get("rank").As<Napi::Number>().Int32Value();
    opt.size = o.Get("size").As<Napi::Number>().Int32Value();
    opt.job_id = o.Get("jobId").As<Napi::String>().Utf8Value();
    if (o.Get("token").IsString()) opt.token = o.Get("token").As<Napi::String>().Utf8Value();
    opt.timeout_ms = o.Get("timeoutMs").As<Napi::Number>().Int32Value();
    opt.shm_piece_bytes = static_cast<size_t>(o.Get("shmPieceBytes").As<Napi::Number>().Int64Value());
    opt.small_bytes = static_cast<size_t>(o.Get("smallBytes").As<Napi::Number>().Int64Value());
    opt.tcp_chunk_bytes = static_cast<size_t>(o.Get("tcpChunkBytes").As<Napi::Number>().Int64Value());
    opt.hierarchical = o.Get("hierarchical").As<Napi::Boolean>().Value();
    opt.streams = o.Get("streams").As<Napi::Number>().Int32Value();
    opt.client_lane = o.Get("clientLane").IsBoolean() && o.Get("clientLane").As<Napi::Boolean>().Value();
    try {
      comm_ = std::make_unique<Communicator>(opt);
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                          "unicc-completion", 0, 1);
    tsfn_.Unref(env);
  }

  ~CommWrap() override { Shutdown(); }

 private:
  template <typename F>
  auto guarded(Napi::Env env, F fn) -> decltype(fn()) {
    try {
      return fn();
    } catch (const Napi::Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
  }

  Napi::Value SetPeers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Napi::Array arr = info[0].As<Napi::Array>();
    std::vector<PeerInfo> peers;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      const Napi::Object p = arr.Get(i).As<Napi::Object>();
      peers.push_back({p.Get("host").As<Napi::String>().Utf8Value(), p.Get("addr").As<Napi::String>().Utf8Value(),
                       p.Get("port").As<Napi::Number>().Int32Value(), p.Get("pid").As<Napi::Number>().Int32Value()});
    }
    guarded(env, [&] { comm_->set_peers(std::move(peers)); });
    return topology_object(env, comm_->topology());
  }

  Napi::Value GetTopology(const Napi::CallbackInfo& info) { return topology_object(info.Env(), comm_->topology()); }

  static Napi::Object topology_object(Napi::Env env, const Topology& t) {
    Napi::Object r = Napi::Object::New(env);
    r.Set("localRank", t.local_rank);
    r.Set("localSize", t.local_size);
    r.Set("hostIndex", t.host_index);
    r.Set("numHosts", t.num_hosts);
    r.Set("hierarchical", t.hierarchical);
    r.Set("flatRing", t.flat_ring);
    r.Set("usesShm", t.shares_memory());
    return r;
  }

  // clientLane(): {fd, pieceBytes, labels} of the group made for this process's client, or null;
  // labels: each local rank's "rank R (host H" (a joining client adds the pid it finds there).
  Napi::Value ClientLane(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const ShmGroup* g = comm_->client_lane();
    if (!g) return env.Null();
    Napi::Object r = Napi::Object::New(env);
    r.Set("fd", g->fd());
    r.Set("pieceBytes", static_cast<double>(g->piece_bytes()));
    const Topology& t = comm_->topology();
    Napi::Array labels = Napi::Array::New(env);
    for (int rank : t.hosts[t.host_index])
      labels.Set(labels.Length(), "rank " + std::to_string(rank) + " (host " + comm_->peers()[rank].host);
    r.Set("labels", labels);
    return r;
  }

  // formWorld(call, otherLanes, {keyPrefix, addr, hostId, probePrefix, timeoutMs}): joins this communicator
  // (lane 0) and otherLanes to the other ranks' (world/formation.h) through the store that call serves
  // (binding/js_store.h), on this communicator's thread, so that the JavaScript thread keeps serving the store.
  Napi::Value FormWorld(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<Communicator*> lanes{comm_.get()};
    const Napi::Array others = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < others.Length(); ++i) lanes.push_back(Unwrap(others.Get(i).As<Napi::Object>())->comm_.get());
    const Napi::Object o = info[2].As<Napi::Object>();
    const auto text = [&o](const char* k) { return o.Get(k).As<Napi::String>().Utf8Value(); };
    const Formation f{text("keyPrefix"), text("addr"), text("hostId"), text("probePrefix"),
                      o.Get("timeoutMs").As<Napi::Number>().Int32Value()};
    auto store = std::make_shared<JsStore>(env, info[0].As<Napi::Function>(), f.timeout_ms);
    auto c = Begin(env, others);
    Napi::Promise p = c->deferred->Promise();
    comm_->run_async([lanes, f, store] { form_world(*store, f, lanes); }, [this, c](const std::string& e) { Finish(c, e); });
    return p;
  }

  // startEngine({fusionBytes, cycleMs, stallWarnS, timeline, autotune, balanceRings, hostShares}): this communicator now
  // carries the engine's named requests only.
  void StartEngine(const Napi::CallbackInfo& info) {
    const Napi::Object o = info[0].As<Napi::Object>();
    EngineOptions e;
    e.fusion_bytes = static_cast<size_t>(o.Get("fusionBytes").As<Napi::Number>().Int64Value());
    e.cycle_ms = o.Get("cycleMs").As<Napi::Number>().Int32Value();
    e.stall_warn_s = o.Get("stallWarnS").As<Napi::Number>().Int32Value();
    e.timeline_path = o.Get("timeline").As<Napi::String>().Utf8Value();
    e.autotune = o.Get("autotune").As<Napi::Boolean>().Value();
    e.balance_rings = o.Get("balanceRings").As<Napi::Boolean>().Value();
    const Napi::Array shares = o.Get("hostShares").As<Napi::Array>();
    for (uint32_t i = 0; i < shares.Length(); ++i) e.host_shares.push_back(shares.Get(i).As<Napi::Number>().DoubleValue());
    guarded(info.Env(), [&] { engine_ = std::make_unique<Engine>(*comm_, e); });
  }

  NamedRequest Named(Napi::Env env, const Napi::Value& name, const Napi::Value& buf, int op, int wire) {
    if (!engine_) throw Napi::Error::New(env, "this unicc world has no engine");
    if (closed_) throw Napi::Error::New(env, "this unicc world is closed");
    if (!buf.IsTypedArray()) throw Napi::TypeError::New(env, "the buffer must be a TypedArray");
    const Napi::TypedArray a = buf.As<Napi::TypedArray>();
    NamedRequest r;
    r.name = name.As<Napi::String>().Utf8Value();
    r.dtype = dtype_of(a, "the buffer");
    r.count = a.ElementLength();
    r.buf = static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset();
    r.op = static_cast<RedOp>(op);
    r.wire = static_cast<Wire>(wire);
    return r;
  }

  // submitNamed(name, buf, op, wire): a promise that settles once every rank submitted the name.
  Napi::Value SubmitNamed(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    NamedRequest r = Named(env, info[0], info[1], info[2].As<Napi::Number>().Int32Value(),
                           info[3].As<Napi::Number>().Int32Value());
    auto c = Begin(env, info[1]);
    Napi::Promise p = c->deferred->Promise();
    r.done = [this, c](const std::string& e) { Finish(c, e); };
    engine_->submit(std::move(r));
    return p;
  }

  // submitNamedSync(names, bufs, op, wire): submits all, blocks until all are done, throws the first error.
  void SubmitNamedSync(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const Napi::Array names = info[0].As<Napi::Array>(), bufs = info[1].As<Napi::Array>();
    const int op = info[2].As<Napi::Number>().Int32Value(), wire = info[3].As<Napi::Number>().Int32Value();
    std::vector<NamedRequest> reqs;
    for (uint32_t i = 0; i < names.Length(); ++i) reqs.push_back(Named(env, names.Get(i), bufs.Get(i), op, wire));
    auto w = std::make_shared<Waiter>();
    w->left = reqs.size();
    for (auto& r : reqs) {
      r.done = [w](const std::string& e) { w->done(e); };
      engine_->submit(std::move(r));
    }
    if (!w->wait().empty()) throw Napi::Error::New(env, w->error);
  }

  // stopEngine(): collective; settles once every rank stopped its engine.
  Napi::Value StopEngine(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto c = Begin(env, env.Undefined());
    Napi::Promise p = c->deferred->Promise();
    if (!engine_) {
      Finish(c, "");
      return p;
    }
    stopper_ = std::thread([this, c] {
      engine_->shutdown();
      Finish(c, "");
    });
    return p;
  }

  Napi::Value EngineTuning(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), engine_ && engine_->tuning());
  }

  Napi::Value EngineSettings(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), engine_ ? engine_->settings() : "");
  }

  // submit(coll, buf, op, root, out, sync, wire): in-place collective on buf (out only for allgather).
  Napi::Value Submit(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw Napi::Error::New(env, "this unicc world is closed");
    Op op;
    op.coll = static_cast<Coll>(info[0].As<Napi::Number>().Int32Value());
    if (op.coll != Coll::Barrier) {
      if (!info[1].IsTypedArray()) throw Napi::TypeError::New(env, "the buffer must be a TypedArray");
      // One query for type, length and address: node-addon-api's accessors ask again for each.
      napi_typedarray_type type;
      size_t length;
      void* data;
      NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, info[1], &type, &length, &data, nullptr, nullptr),
                           Napi::Value());
      op.dtype = dtype_of(env, type, "the buffer");
      op.count = length;
      op.buf = static_cast<char*>(data);
    }
    op.op = static_cast<RedOp>(info[2].As<Napi::Number>().Int32Value());
    op.root = info[3].As<Napi::Number>().Int32Value();
    op.wire = static_cast<Wire>(info[6].IsNumber() ? info[6].As<Napi::Number>().Int32Value() : 0);
    if (op.coll == Coll::Allgather) {
      if (!info[4].IsTypedArray()) throw Napi::TypeError::New(env, "allgather needs an output TypedArray");
      const Napi::TypedArray out = info[4].As<Napi::TypedArray>();
      if (dtype_of(out, "the output") != op.dtype)
        throw Napi::TypeError::New(env, "allgather output must have the same element type as the input");
      if (out.ElementLength() != op.count * comm_->options().size)
        throw Napi::RangeError::New(env, "allgather output must hold size x input length = " +
                                             std::to_string(op.count * comm_->options().size) + " elements, got " +
                                             std::to_string(out.ElementLength()));
      op.out = static_cast<char*>(out.ArrayBuffer().Data()) + out.ByteOffset();
    }
    const bool sync = info[5].As<Napi::Boolean>().Value();
    if (sync) {
      Waiter w;  // this call returns only once done has run, so the waiter may live here
      op.done = [&w](const std::string& e) { w.done(e); };
      comm_->submit_or_run(std::move(op));  // on this thread when the lane is idle: no hand-off
      if (!w.wait().empty()) throw Napi::Error::New(env, w.error);
      return env.Undefined();
    }
    // Finished right here when the peers are there: then the caller gets no promise, only
    // undefined or the error's text (a promise and its reaction cost more than a small collective).
    // Else the core's thread finishes it and settles the promise.
    auto c = std::make_shared<Completion>();
    op.done = [this, c, js = std::this_thread::get_id()](const std::string& e) {
      if (std::this_thread::get_id() == js) c->error = e;
      else Finish(c, e);
    };
    if (comm_->submit_eager(std::move(op)))
      return c->error.empty() ? env.Undefined() : Napi::String::New(env, c->error).As<Napi::Value>();
    Napi::Array keep = Napi::Array::New(env);
    keep.Set(0u, info[1]);
    keep.Set(1u, info[4]);
    Arm(env, c, keep);  // before the event loop can run Finish's settling
    return c->deferred->Promise();
  }

  // openRing(engineComm, path, bytes, defaultWire, who, onFatal): a client's command ring
  // (command_ring.h) over the file at path, submitting to this lane and to engineComm's engine
  // (this one in a world of one). onFatal(message) runs on the JavaScript thread if the client
  // breaks the ring. Returns the ring's methods (ring_binding.cc).
  Napi::Value OpenRing(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw Napi::Error::New(env, "this unicc world is closed");
    CommWrap* lane = CommWrap::Unwrap(info[0].As<Napi::Object>());
    if (!lane->engine_) throw Napi::Error::New(env, "openRing: the second communicator has no engine");
    const std::string path = info[1].As<Napi::String>().Utf8Value();
    const size_t bytes = static_cast<size_t>(info[2].As<Napi::Number>().Int64Value());
    auto fatal = Napi::ThreadSafeFunction::New(env, info[5].As<Napi::Function>(), "unicc-ring-fatal", 0, 1);
    fatal.Unref(env);
    RingTargets t;
    t.submit = [comm = comm_.get()](Op op) { comm->submit_or_run(std::move(op)); };
    t.submit_named = [engine = lane->engine_.get()](NamedRequest r) { engine->submit(std::move(r)); };
    t.size = comm_->options().size;
    t.default_wire = static_cast<Wire>(info[3].As<Napi::Number>().Int32Value());
    t.who = info[4].As<Napi::String>().Utf8Value();
    t.fatal = [fatal](const std::string& message) mutable {
      fatal.NonBlockingCall(new std::string(message), [](Napi::Env env, Napi::Function fn, std::string* m) {
        fn.Call({Napi::String::New(env, *m)});
        delete m;
      });
    };
    std::shared_ptr<CommandRing> ring;
    std::string attach = "the client offered none";
    try {
      std::shared_ptr<Mapping> file = map_shared_file(path, bytes);
      // info[6]: {pid, probe}, the client's pid and where its own mapping of the ring starts.
      if (info[6].IsObject()) {
        const Napi::Object c = info[6].As<Napi::Object>();
        const int pid = c.Get("pid").As<Napi::Number>().Int32Value();
        attach = probe_client_memory(pid, static_cast<uintptr_t>(c.Get("probe").As<Napi::Number>().Int64Value()),
                                     file->data, ring::kHeaderProbeBytes);
        if (attach.empty()) t.client_pid = pid;
      }
      ring = std::make_shared<CommandRing>(std::move(file), std::move(t));
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, e.what());
    }
    // Both lanes stop it before they close: its thread submits to them.
    rings_.push_back(ring);
    if (lane != this) lane->rings_.push_back(ring);
    Napi::Object o = ring_object(env, ring);
    o.Set("attach", attach.empty() ? Napi::Value(Napi::Boolean::New(env, true)) : Napi::String::New(env, attach));
    return o;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  std::shared_ptr<Completion> Begin(Napi::Env env, Napi::Value keep) {
    auto c = std::make_shared<Completion>();
    Arm(env, c, keep);
    return c;
  }

  // Gives c its promise and keeps keep (the caller's arrays) and the event loop alive until it settles.
  void Arm(Napi::Env env, const std::shared_ptr<Completion>& c, Napi::Value keep) {
    c->deferred.emplace(Napi::Promise::Deferred::New(env));
    if (!keep.IsUndefined()) c->keep_alive = Napi::Persistent(keep);
    // Keep the event loop alive only while a collective is in flight.
    if (pending_++ == 0) tsfn_.Ref(env);
  }

  void Finish(std::shared_ptr<Completion> c, const std::string& error) {
    c->error = error;
    auto* boxed = new std::shared_ptr<Completion>(std::move(c));
    tsfn_.BlockingCall(boxed, [this](Napi::Env env, Napi::Function, std::shared_ptr<Completion>* b) {
      std::shared_ptr<Completion> done = std::move(*b);
      delete b;
      Settle(env, done);
    });
  }

  // On the JavaScript thread.
  void Settle(Napi::Env env, const std::shared_ptr<Completion>& c) {
    if (c->error.empty()) c->deferred->Resolve(env.Undefined());
    else c->deferred->Reject(Napi::Error::New(env, c->error).Value());
    c->keep_alive.Reset();
    if (--pending_ == 0) tsfn_.Unref(env);
  }

  void Shutdown() {
    if (closed_) return;
    closed_ = true;
    if (stopper_.joinable()) stopper_.join();
    for (auto& r : rings_) r->halt();
    engine_.reset();  // leaves without the others if stopEngine() was not awaited
    comm_->close();
    tsfn_.Release();
  }

  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<Engine> engine_;
  std::thread stopper_;
  std::vector<std::shared_ptr<CommandRing>> rings_;
  Napi::ThreadSafeFunction tsfn_;
  int pending_ = 0;
  bool closed_ = false;
};

}  // namespace
void RegisterSharedMemory(Napi::Env env, Napi::Object exports);  // binding/shared_memory.cc
}  // namespace unicc

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  exports.Set("Comm", unicc::CommWrap::Define(env));
  unicc::RegisterSharedMemory(env, exports);
  return exports;
}

NODE_API_MODULE(unicc_core, InitAddon)
