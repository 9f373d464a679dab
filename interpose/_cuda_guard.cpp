// Make a CPU-only PyTorch build accept "cuda" tensors in autograd.
//
// Autograd (InputMetadata, the engine's device threads, InputBuffer) asks c10
// for the CUDA device guard of every cuda tensor that needs grad, and
// at::accelerator for the current stream; a CPU build has neither and aborts
// the process. torch._C._ensureCUDADeviceGuardSet() only covers CUDA builds
// without GPUs. This registers the same FakeGuardImpl, plus CUDA hooks that
// report CUDA present so at::getAccelerator() answers CUDA. Loaded with ctypes
// by cuda_guard.py.
#include <ATen/detail/CUDAHooksInterface.h>
#include <cstring>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/core/impl/FakeGuardImpl.h>

namespace {
c10::impl::FakeGuardImpl<c10::DeviceType::CUDA> sim_cuda_guard;

struct SimCUDAHooks final : at::CUDAHooksInterface {
  explicit SimCUDAHooks(at::CUDAHooksArgs) {}
  bool hasCUDA() const override { return true; }
  bool isBuilt() const override { return true; }
  bool isAvailable() const override { return true; }
  bool hasPrimaryContext(c10::DeviceIndex) const override { return true; }
  void init() const override {}
  c10::DeviceIndex deviceCount() const override { return sim_cuda_guard.deviceCount(); }
  int getNumGPUs() const override { return sim_cuda_guard.deviceCount(); }
  c10::DeviceIndex current_device() const override { return sim_cuda_guard.getDevice().index(); }
  c10::DeviceIndex getCurrentDevice() const override { return sim_cuda_guard.getDevice().index(); }
  void setCurrentDevice(c10::DeviceIndex d) const override {
    sim_cuda_guard.setDevice(c10::Device(c10::DeviceType::CUDA, d));
  }
  c10::DeviceIndex exchangeDevice(c10::DeviceIndex d) const override {
    return sim_cuda_guard.exchangeDevice(c10::Device(c10::DeviceType::CUDA, d)).index();
  }
  c10::DeviceIndex maybeExchangeDevice(c10::DeviceIndex d) const override { return exchangeDevice(d); }
  bool isPinnedPtr(const void*) const override { return false; }
  void deviceSynchronize(c10::DeviceIndex) const override {}
};
}  // namespace


namespace {
void* cpu_hooks_vptr = nullptr;
}

// Install the fake guard (once, kept for good: fake cuda tensors may outlive the shim)
// and switch the CUDA hooks to the simulated ones (on != 0) or back to the CPU build's.
// getCUDAHooks() built its default hooks object at torch import and keeps it in a
// function-local static we cannot reach; both classes are stateless apart from the
// vtable pointer, so we retarget that pointer in place. Returns hasCUDA() afterwards.
extern "C" int phantora_set_sim_cuda(int on) {
  constexpr auto idx = static_cast<std::size_t>(c10::DeviceType::CUDA);
  if (c10::impl::device_guard_impl_registry[idx].load() == nullptr) {
    c10::impl::device_guard_impl_registry[idx].store(&sim_cuda_guard);
  }
  static_assert(sizeof(SimCUDAHooks) == sizeof(at::CUDAHooksInterface));
  auto* hooks = const_cast<at::CUDAHooksInterface*>(&at::detail::getCUDAHooks());
  if (cpu_hooks_vptr == nullptr && !hooks->hasCUDA()) {
    std::memcpy(&cpu_hooks_vptr, hooks, sizeof(void*));
  }
  if (cpu_hooks_vptr != nullptr) {
    if (on) {
      SimCUDAHooks sim{at::CUDAHooksArgs{}};
      std::memcpy(static_cast<void*>(hooks), &sim, sizeof(void*));
    } else {
      std::memcpy(static_cast<void*>(hooks), &cpu_hooks_vptr, sizeof(void*));
    }
  }
  return at::detail::getCUDAHooks().hasCUDA() ? 1 : 0;
}

// The current device as C++ sees it (Tensor.cuda(), .to("cuda"), device guards fill a
// missing index from here): kept equal to torch.cuda.current_device() by cuda_guard.py.
extern "C" void phantora_set_guard_device(int index) {
  sim_cuda_guard.uncheckedSetDevice(c10::Device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(index)));
}
