#include "verbs_lib.h"

#include <dlfcn.h>

namespace kvf {

const VerbsLib& Verbs() {
  static const VerbsLib lib = [] {
    VerbsLib l;
    void* h = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* e = dlerror();
      l.error = std::string("dlopen libibverbs.so.1: ") + (e ? e : "unknown error");
      return l;
    }
    bool ok = true;
    auto need = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(h, name));
      if (fn == nullptr && ok) ok = false, l.error = std::string("libibverbs.so.1 lacks ") + name;
    };
    need(l.get_device_list, "ibv_get_device_list");
    need(l.free_device_list, "ibv_free_device_list");
    need(l.get_device_name, "ibv_get_device_name");
    need(l.open_device, "ibv_open_device");
    need(l.close_device, "ibv_close_device");
    need(l.query_device, "ibv_query_device");
    need(l.query_port, "ibv_query_port");
    need(l.query_gid, "ibv_query_gid");
    need(l.alloc_pd, "ibv_alloc_pd");
    need(l.dealloc_pd, "ibv_dealloc_pd");
    need(l.reg_mr, "ibv_reg_mr");
    need(l.dereg_mr, "ibv_dereg_mr");
    need(l.create_cq, "ibv_create_cq");
    need(l.destroy_cq, "ibv_destroy_cq");
    need(l.create_qp, "ibv_create_qp");
    need(l.modify_qp, "ibv_modify_qp");
    need(l.destroy_qp, "ibv_destroy_qp");
    need(l.wc_status_str, "ibv_wc_status_str");
    need(l.create_comp_channel, "ibv_create_comp_channel");
    need(l.destroy_comp_channel, "ibv_destroy_comp_channel");
    need(l.get_cq_event, "ibv_get_cq_event");
    need(l.ack_cq_events, "ibv_ack_cq_events");
    need(l.get_async_event, "ibv_get_async_event");
    need(l.ack_async_event, "ibv_ack_async_event");
    need(l.event_type_str, "ibv_event_type_str");
    l.query_gid_ex = reinterpret_cast<decltype(l.query_gid_ex)>(dlsym(h, "_ibv_query_gid_ex"));
    l.reg_mr_iova2 = reinterpret_cast<decltype(l.reg_mr_iova2)>(dlsym(h, "ibv_reg_mr_iova2"));
    if (!ok) {
      dlclose(h);
      return l;
    }
    l.handle = h;
    return l;
  }();
  return lib;
}

}  // namespace kvf
