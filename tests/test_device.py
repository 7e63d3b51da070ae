import pytest
import torch

from cntk import device as D

HAS_GPU = torch.cuda.is_available() and torch.cuda.device_count() > 0


@pytest.fixture(autouse=True)
def fresh_device_state():
    D._reset()
    yield
    D._reset()


def _fake_gpu(device_id=0):
    # a GPU descriptor that exists even on a CPU-only machine, for default-device bookkeeping
    return D.DeviceDescriptor(device_id, D.DeviceKind.GPU)


def test_device_kind_values():
    assert D.DeviceKind.CPU == 0 and D.DeviceKind.GPU == 1
    assert D.DeviceKind(1) is D.DeviceKind.GPU


def test_cpu_descriptor():
    c = D.cpu()
    assert c.type() == D.DeviceKind.CPU and c.type() == 0
    assert c.id() == 0
    assert not c.is_locked()
    assert c.torch_device == torch.device("cpu")
    assert str(c) == "Device CPU"
    assert "CPU" in repr(c)


def test_equality_and_hash():
    assert D.cpu() == D.cpu() and hash(D.cpu()) == hash(D.cpu())
    assert D.cpu() != _fake_gpu(0)
    assert _fake_gpu(0) != _fake_gpu(1)
    assert _fake_gpu(1) == _fake_gpu(1)
    assert len({D.cpu(), D.cpu(), _fake_gpu(0)}) == 2
    assert D.cpu() != "cpu"
    assert _fake_gpu(2).torch_device == torch.device("cuda", 2)
    assert str(_fake_gpu(2)) == "Device GPU 2"


def test_all_devices_ends_with_cpu():
    devs = D.all_devices()
    assert devs[-1] == D.cpu()
    gpus = devs[:-1]
    assert len(gpus) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert all(d.type() == D.DeviceKind.GPU for d in gpus)
    assert [d.id() for d in gpus] == list(range(len(gpus)))


@pytest.mark.skipif(HAS_GPU, reason="needs a machine without CUDA")
def test_gpu_raises_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available"):
        D.gpu(0)


def test_gpu_invalid_id_raises():
    with pytest.raises(ValueError, match="invalid"):
        D.gpu(10 ** 6)
    with pytest.raises(ValueError):
        D.gpu(-1)


@pytest.mark.skipif(not HAS_GPU, reason="needs CUDA")
def test_gpu_descriptor_and_properties():
    g = D.gpu(0)
    assert g.type() == D.DeviceKind.GPU and g.id() == 0
    assert g.torch_device == torch.device("cuda", 0)
    props = D.get_gpu_properties(g)
    tp = torch.cuda.get_device_properties(0)
    assert props.device_id == 0 and props.name == tp.name
    assert props.total_memory == tp.total_memory // (1024 * 1024)
    assert props.cuda_cores >= tp.multi_processor_count
    assert (props.version_major, props.version_minor) == (tp.major, tp.minor)


@pytest.mark.skipif(not HAS_GPU, reason="needs CUDA")
def test_default_is_a_gpu_when_available():
    assert D.default_torch_device().type == "cuda"
    assert D.use_default_device().type() == D.DeviceKind.GPU


@pytest.mark.skipif(not HAS_GPU, reason="needs CUDA")
def test_gpu_lock():
    g = D.gpu(0)
    assert D.try_set_default_device(g, acquire_device_lock=True)
    assert D._lock_held is not None and D._lock_held[0] == 0
    assert not g.is_locked()  # held by this process, not another one
    assert D.try_set_default_device(D.cpu())
    assert D._lock_held is None


def test_get_gpu_properties_rejects_cpu():
    with pytest.raises(ValueError, match="CPU"):
        D.get_gpu_properties(D.cpu())


@pytest.mark.skipif(HAS_GPU, reason="needs a machine without CUDA")
def test_default_is_cpu_without_cuda():
    assert D.default_torch_device() == torch.device("cpu")
    assert D.to_torch_device(None) == torch.device("cpu")
    assert D.use_default_device() == D.cpu()


def test_try_set_default_device_then_use():
    assert D.try_set_default_device(_fake_gpu(3))
    assert D.default_torch_device() == torch.device("cuda", 3)
    assert D.try_set_default_device(D.cpu())
    assert D.default_torch_device() == torch.device("cpu")
    assert D.use_default_device() == D.cpu()


def test_use_default_device_freezes():
    assert D.try_set_default_device(D.cpu())
    assert D.use_default_device() == D.cpu()
    # the same device is still accepted, a different one is refused
    assert D.try_set_default_device(D.cpu())
    with pytest.raises(RuntimeError, match="frozen"):
        D.try_set_default_device(_fake_gpu(0))
    assert D.use_default_device() == D.cpu()


def test_default_torch_device_does_not_freeze():
    D.default_torch_device()
    assert D.try_set_default_device(_fake_gpu(1))
    assert D.use_default_device() == _fake_gpu(1)


def test_cpu_cannot_be_locked():
    assert not D.try_set_default_device(D.cpu(), acquire_device_lock=True)
    assert D.try_set_default_device(_fake_gpu(0))
    assert not D.try_set_default_device(D.cpu(), acquire_device_lock=True)
    assert D.use_default_device() == _fake_gpu(0)  # unchanged by the failed attempt


def test_excluded_devices():
    D.set_excluded_devices([D.cpu()])
    assert not D.try_set_default_device(D.cpu())
    assert D.try_set_default_device(_fake_gpu(0))
    D.set_excluded_devices([])
    assert D.try_set_default_device(D.cpu())


@pytest.mark.skipif(HAS_GPU, reason="needs a machine without CUDA")
def test_excluding_cpu_without_gpu_still_falls_back_to_cpu():
    D.set_excluded_devices([D.cpu()])
    assert D.use_default_device() == D.cpu()


def test_try_set_default_device_type_check():
    with pytest.raises(TypeError):
        D.try_set_default_device("cpu")


def test_set_default_device_is_deprecated():
    with pytest.warns(DeprecationWarning):
        assert D.set_default_device(D.cpu())


def test_to_torch_device():
    assert D.to_torch_device(D.cpu()) == torch.device("cpu")
    assert D.to_torch_device(_fake_gpu(1)) == torch.device("cuda", 1)
    assert D.to_torch_device(torch.device("cpu")) == torch.device("cpu")
    assert D.to_torch_device("cpu") == torch.device("cpu")
    assert D.to_torch_device(-1) == torch.device("cpu")
    assert D.to_torch_device(2) == torch.device("cuda", 2)
    D.try_set_default_device(_fake_gpu(4))
    assert D.to_torch_device(None) == torch.device("cuda", 4)
    with pytest.raises(TypeError):
        D.to_torch_device(1.5)


def test_static_method_aliases():
    assert D.DeviceDescriptor.cpu_device() == D.cpu()
    assert D.DeviceDescriptor.all_devices() == D.all_devices()
    assert D.DeviceDescriptor.try_set_default_device(D.cpu())
    assert D.DeviceDescriptor.use_default_device() == D.cpu()


def test_set_device_from_pytest_env(monkeypatch):
    # tutorials call cntk.tests.test_utils.set_device_from_pytest_env() first
    import cntk as C
    from cntk.tests import test_utils
    monkeypatch.delenv("TEST_DEVICE", raising=False)
    before = C.device.use_default_device()
    test_utils.set_device_from_pytest_env()
    assert C.device.use_default_device() == before
    monkeypatch.setenv("TEST_DEVICE", "cpu")
    try:
        test_utils.set_device_from_pytest_env()
        assert C.device.use_default_device() == C.device.cpu()
    finally:
        C.device.try_set_default_device(before)
    assert test_utils.PRECISION_TO_TYPE["double"] is __import__("numpy").float64
