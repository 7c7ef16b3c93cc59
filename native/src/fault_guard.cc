// SIGBUS guard (fault_guard.h): one process-wide handler that jumps back into the copy thread's RunGuarded()
// frame, and forwards any other SIGBUS to the handler installed before it.
#include "fault_guard.h"

#include <pthread.h>
#include <signal.h>

#include <mutex>

namespace kvf {

namespace {
struct sigaction previous_action;
std::once_flag installed;

thread_local sigjmp_buf* current_jump = nullptr;
thread_local uintptr_t last_fault = 0;

void OnBusError(int sig, siginfo_t* info, void* context) {
  sigjmp_buf* jump = current_jump;
  if (jump != nullptr) {
    last_fault = reinterpret_cast<uintptr_t>(info->si_addr);
    current_jump = nullptr;
    siglongjmp(*jump, 1);
  }
  // Not a guarded copy: behave as if this handler were not here.
  if (previous_action.sa_flags & SA_SIGINFO) {
    previous_action.sa_sigaction(sig, info, context);
    return;
  }
  if (previous_action.sa_handler != SIG_DFL && previous_action.sa_handler != SIG_IGN) {
    previous_action.sa_handler(sig);
    return;
  }
  // Default action: restore it; returning re-executes the faulting access, which then terminates the process
  // with SIGBUS as it would have without the guard.
  signal(SIGBUS, SIG_DFL);
}
}  // namespace

void InstallFaultGuard() {
  std::call_once(installed, [] {
    struct sigaction action {};
    action.sa_sigaction = OnBusError;
    sigemptyset(&action.sa_mask);
    // SA_NODEFER: SIGBUS stays deliverable after the jump (a blocked synchronous SIGBUS would kill the process).
    action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigaction(SIGBUS, &action, &previous_action);
  });
}

namespace fault_guard {
sigjmp_buf*& CurrentJump() { return current_jump; }
uintptr_t& LastFaultAddress() { return last_fault; }
void Recovered() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGBUS);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}
}  // namespace fault_guard

}  // namespace kvf
