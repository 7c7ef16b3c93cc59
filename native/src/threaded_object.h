// What every JavaScript object that owns native threads and a Completer (the tcp and verbs transports, the SSD
// file) does about its end: close() stops the threads and then settles what is pending; an object collected while
// open, or still open when its environment exits (a worker ending, process exit), stops its threads and abandons
// its promises instead. The environment's cleanup hook runs before the Completer's ThreadSafeFunction is torn down
// (hooks run last-in first-out), so no thread posts to a Completer that is gone.
#pragma once
#include <napi.h>

#include "transport.h"

namespace kvf {

class ThreadedObject {
 public:
  virtual ~ThreadedObject() = default;

 protected:
  // Stops the threads and frees what they used; sets closed_. Idempotent.
  virtual void Shutdown() = 0;

  // The last step of the constructor, once completer_ is set and the threads may run.
  void WatchEnvExit(napi_env env) {
    env_ = env;
    napi_add_env_cleanup_hook(env, &ThreadedObject::OnEnvExit, this);
    hooked_ = true;
  }

  // The first step of the destructor of the class that overrides Shutdown.
  void EndUnclosed() {
    if (hooked_) napi_remove_env_cleanup_hook(env_, &ThreadedObject::OnEnvExit, this);
    hooked_ = false;
    if (closed_) return;
    Shutdown();
    completer_->Abandon();
  }

  Completer* completer_ = nullptr;
  bool closed_ = false;

 private:
  static void OnEnvExit(void* arg) {
    auto* self = static_cast<ThreadedObject*>(arg);
    self->hooked_ = false;
    if (self->closed_) return;
    self->Shutdown();
    self->completer_->Abandon();
  }

  napi_env env_ = nullptr;
  bool hooked_ = false;
};

}  // namespace kvf
