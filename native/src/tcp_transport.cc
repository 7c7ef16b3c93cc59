// The `TcpTransportNative` ObjectWrap: a TcpServer (serving side) and a TcpClient (reading side) over one pool.
// The JS thread only copies arguments into plain structs; the two epoll threads do the work and settle Promises
// through the Completer. Validation with field-naming messages lives in native/lib/tcp-transport.ts; the checks
// here only keep native code safe (pool bounds, sizes).
#include <algorithm>
#include <memory>

#include "modules.h"
#include "tcp_client.h"
#include "tcp_server.h"
#include "threaded_object.h"
#include "transport.h"

namespace kvf {
namespace {

class TcpTransport : public Napi::ObjectWrap<TcpTransport>, ThreadedObject {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "TcpTransportNative",
                       {InstanceMethod<&TcpTransport::Port>("port"),
                        InstanceMethod<&TcpTransport::AddPeer>("addPeer"),
                        InstanceMethod<&TcpTransport::Connect>("connect"),
                        InstanceMethod<&TcpTransport::AddGrant>("addGrant"),
                        InstanceMethod<&TcpTransport::RemoveGrant>("removeGrant"),
                        InstanceMethod<&TcpTransport::Readv>("readv"),
                        InstanceMethod<&TcpTransport::DropPeer>("dropPeer"),
                        InstanceMethod<&TcpTransport::Counters>("counters"),
                        InstanceMethod<&TcpTransport::Close>("close")});
  }

  // new TcpTransportNative(pool, host, port, socketBufferBytes, onEvent, stallTimeoutMs)
  explicit TcpTransport(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TcpTransport>(info) {
    Napi::Env env = info.Env();
    mem_ = AcquireMemory(info[0], "pool");
    std::string host = info[1].As<Napi::String>();
    int port = info[2].As<Napi::Number>().Int32Value();
    int sockbuf = info[3].As<Napi::Number>().Int32Value();
    completer_ = Completer::Create(env, "kvfabric-tcp", info[4].IsFunction() ? info[4].As<Napi::Function>()
                                                                            : Napi::Function());
    Completer* comp = completer_;
    auto post = [comp](Completion c) { comp->Post(std::move(c)); };
    server_ = std::make_unique<TcpServer>(mem_, &counters_, post);
    client_ = std::make_unique<TcpClient>(&counters_, post, sockbuf);
    TcpServer::Options server_opts;
    server_opts.sockbuf = sockbuf;
    server_opts.stall_ms = info[5].IsNumber() ? info[5].As<Napi::Number>().Int64Value() : 0;
    std::string err = server_->Start(host, port, server_opts);
    if (err.empty()) err = client_->Start();
    if (!err.empty()) {
      Shutdown();
      completer_->Release(env);
      throw CodedError(env, code::kTransportUnavailable, "tcp transport: " + err);
    }
    WatchEnvExit(env);
  }

  ~TcpTransport() override { EndUnclosed(); }

 private:
  void Shutdown() override {
    closed_ = true;
    if (client_) client_->Stop();
    if (server_) server_->Stop();
    mem_.reset();
  }

  void CheckOpen(Napi::Env env) {
    if (closed_) throw CodedError(env, code::kTransportFailed, "tcp transport is closed");
  }

  Napi::Value Port(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), server_->port()); }

  // addPeer(peerId, secret: Buffer(32))
  void AddPeer(const Napi::CallbackInfo& info) {
    CheckOpen(info.Env());
    auto secret = info[1].As<Napi::Buffer<uint8_t>>();
    if (secret.Length() != tcpwire::kSecretBytes)
      throw CodedError(info.Env(), code::kInvalidArgument, "secret: expected 32 bytes");
    server_->AddPeer(info[0].As<Napi::String>(), secret.Data());
  }

  // connect(peerId, host, port, name, secret, connections, timeoutMs) -> Promise<void-ish>
  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    auto secret = info[4].As<Napi::Buffer<uint8_t>>();
    std::string name = info[3].As<Napi::String>();
    if (secret.Length() != tcpwire::kSecretBytes || name.empty() || name.size() > tcpwire::kMaxPeerId)
      throw CodedError(env, code::kInvalidArgument, "material: bad secret or peer name");
    auto [promise, op] = completer_->Add(env);
    client_->Connect(op, info[0].As<Napi::String>(), info[1].As<Napi::String>(),
                     info[2].As<Napi::Number>().Int32Value(), name,
                     std::string(reinterpret_cast<const char*>(secret.Data()), secret.Length()),
                     info[5].As<Napi::Number>().Int32Value(), info[6].As<Napi::Number>().Int64Value());
    return promise;
  }

  // addGrant(grantId: Buffer(16), peerId, ranges: Float64Array (offset, length pairs), expiresAtMs)
  void AddGrant(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    GrantId id;
    if (!ReadGrantId(info[0], &id)) throw CodedError(env, code::kInvalidArgument, "grantId: expected 16 bytes");
    std::vector<uint64_t> flat;
    if (!ReadU64Array(info[2], &flat) || flat.size() % 2 != 0)
      throw CodedError(env, code::kInvalidArgument, "ranges: expected a Float64Array of (offset, length) pairs");
    std::vector<tcpwire::WireDesc> ranges(flat.size() / 2);
    for (size_t i = 0; i < ranges.size(); i++) {
      ranges[i] = {flat[2 * i], flat[2 * i + 1]};
      if (!mem_->Contains(ranges[i].offset, ranges[i].length))
        throw CodedError(env, code::kInvalidArgument, "ranges: range " + std::to_string(i) + " lies outside the pool");
    }
    server_->AddGrant(id, info[1].As<Napi::String>(), std::move(ranges), info[3].As<Napi::Number>().Int64Value());
  }

  // removeGrant(grantId: Buffer(16)) -> Promise: settles once no queued answer under the grant is left to write
  // (its pages may then be reused); at once when nothing is queued or the grant is unknown.
  Napi::Value RemoveGrant(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    GrantId id;
    if (!ReadGrantId(info[0], &id)) throw CodedError(env, code::kInvalidArgument, "grantId: expected 16 bytes");
    if (closed_) {  // nothing is served any more (and the Completer is released)
      auto done = Napi::Promise::Deferred::New(env);
      done.Resolve(env.Undefined());
      return done.Promise();
    }
    auto [promise, op] = completer_->Add(env);
    server_->RemoveGrant(id, op);
    return promise;
  }

  // readv(peerId, grantId, remoteOffsets, localOffsets, lengths, timeoutMs, grantKey[, expected, pageBytes])
  //   -> Promise<{ bytes[, mismatches] }>. With `expected` (a Uint32Array of (lo, hi) per descriptor), every
  //   descriptor is one page of `pageBytes`, summed as it lands; `mismatches` lists the pages that differ.
  Napi::Value Readv(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    CheckOpen(env);
    std::vector<uint64_t> remote, local, lengths;
    if (!ReadU64Array(info[2], &remote) || !ReadU64Array(info[3], &local) || !ReadU64Array(info[4], &lengths) ||
        remote.size() != local.size() || remote.size() != lengths.size())
      throw CodedError(env, code::kInvalidArgument, "readv: expected three Float64Arrays of equal length");
    std::vector<ReadDesc> descs(remote.size());
    for (size_t i = 0; i < descs.size(); i++) {
      if (lengths[i] == 0 || lengths[i] > tcpwire::kMaxReadBytes || !mem_->Contains(local[i], lengths[i]))
        throw CodedError(env, code::kInvalidArgument,
                         "localOffsets: descriptor " + std::to_string(i) + " lies outside the pool or is too long");
      descs[i] = {remote[i], mem_->base() + local[i], lengths[i], uint32_t(i)};
    }
    LandedPages check = ReadCheck(env, info, lengths);
    GrantId grant;
    if (!ReadGrantId(info[1], &grant)) throw CodedError(env, code::kInvalidArgument, "grantId: expected 16 bytes");
    auto [promise, op] = completer_->Add(env);
    client_->Read(op, info[0].As<Napi::String>(), grant, std::move(descs), info[5].As<Napi::Number>().Int64Value(),
                  std::move(check));
    return promise;
  }

  // The optional (expected, pageBytes) of readv: nothing to check when `expected` is absent.
  static LandedPages ReadCheck(Napi::Env env, const Napi::CallbackInfo& info, const std::vector<uint64_t>& lengths) {
    LandedPages check;
    if (info.Length() < 8 || info[7].IsUndefined()) return check;
    if (!info[7].IsTypedArray() || info[7].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
        info[7].As<Napi::Uint32Array>().ElementLength() != 2 * lengths.size() || lengths.size() > UINT32_MAX)
      throw CodedError(env, code::kInvalidArgument,
                       "expect.checksums: expected a Uint32Array of (lo, hi) per descriptor (" +
                           std::to_string(2 * lengths.size()) + " elements)");
    uint64_t page_bytes = info[8].IsNumber() ? uint64_t(std::max(0.0, info[8].As<Napi::Number>().DoubleValue())) : 0;
    for (size_t i = 0; i < lengths.size(); i++)
      if (page_bytes == 0 || lengths[i] != page_bytes)
        throw CodedError(env, code::kInvalidArgument,
                         "expect.pageBytes: every descriptor of a checked read is one page (descriptor " +
                             std::to_string(i) + " is " + std::to_string(lengths[i]) + " bytes)");
    Napi::Uint32Array sums = info[7].As<Napi::Uint32Array>();
    check.page_bytes = page_bytes;
    check.expected.resize(lengths.size());
    for (size_t i = 0; i < lengths.size(); i++)
      check.expected[i] = uint64_t(sums[2 * i]) | (uint64_t(sums[2 * i + 1]) << 32);
    return check;
  }

  void DropPeer(const Napi::CallbackInfo& info) {
    if (closed_) return;
    std::string peer = info[0].As<Napi::String>();
    bool reading = info.Length() < 2 || info[1].ToBoolean(), serving = info.Length() < 3 || info[2].ToBoolean();
    if (serving) server_->DropPeer(peer);
    if (reading) client_->Drop(peer);
  }

  Napi::Value Counters(const Napi::CallbackInfo& info) { return counters_.ToObject(info.Env()); }

  void Close(const Napi::CallbackInfo& info) {
    if (closed_) return;
    Shutdown();
    completer_->Release(info.Env());
  }

  MemoryRef mem_;
  TransportCounters counters_;
  std::unique_ptr<TcpServer> server_;
  std::unique_ptr<TcpClient> client_;
};

}  // namespace

void InitTcp(Napi::Env env, Napi::Object exports) { exports.Set("TcpTransportNative", TcpTransport::Define(env)); }

}  // namespace kvf
