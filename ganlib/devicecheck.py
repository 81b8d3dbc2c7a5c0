"""Run a lesson on the CPU as if its device were a GPU, so device mistakes fail on a machine without one.

On a GPU, three mistakes crash a notebook that runs fine on a CPU: a tensor on the GPU meets one on the
CPU in an operation ("Expected all tensors to be on the same device"); a random draw for the GPU uses a
CPU ``torch.Generator`` ("Expected a 'cuda' device type for generator"), or the other way round; and a
GPU tensor is handed to NumPy or matplotlib without ``.cpu()``. ``DeviceCheck`` finds all three on the CPU:

- the lesson's device is ``LESSON_DEVICE``, ``torch.device("cpu", 0)``: CPU memory, but a device object
  the lesson can only have got from ``profiles.setup``. A tensor created on it (``device=device``) or
  moved to it (``.to(device)``, a model's ``.to(device)``) is marked as **on the GPU**; one created
  without a device, or by ``.cpu()``, as **on the host**. Every torch call passes the mark on to its
  results, and ``x.device`` answers ``LESSON_DEVICE`` for a marked tensor, so library code that
  creates tensors "on x's device" marks them too;
- a call that combines a GPU tensor with a host tensor raises ``DeviceMixError``, except a 0-dim host
  tensor in an elementwise call, which CUDA takes as a scalar (``torch.stack``, ``torch.cat`` and their
  kin take no such scalar: a lesson's first run on an H200 found lesson 08 stacking 0-dim host and GPU
  tensors, which this check then let through); so does a draw whose generator lives elsewhere than the draw, and NumPy on a
  GPU tensor. (``torch.load(..., map_location=LESSON_DEVICE)`` loads to the CPU and marks the result.)

``make test`` runs every lesson and deck under it in the smoke profile (``tools/course.py prepare``
enables it in the copies nbval executes). Tensors of unknown origin (loaded from files, made in C++)
carry no mark and are never blamed: the check can miss a mistake there, but it does not cry wolf.
"""

from __future__ import annotations

import os

import torch
from torch.overrides import TorchFunctionMode

LESSON_DEVICE = torch.device("cpu", 0)  # the stand-in for "cuda": see the module docstring
GPU, HOST = "gpu", "host"
_MARK = "_ganlib_home"
_TRANSFER = {torch.Tensor.to, torch.Tensor.cuda, torch.Tensor.cpu}
_EXEMPT = {torch.Tensor.copy_, torch.Tensor.__getitem__, torch.Tensor.__setitem__}  # CUDA copies and indexes across
_JOINS = {torch.stack, torch.cat, torch.concat, torch.concatenate, torch.hstack, torch.vstack, torch.dstack,
          torch.column_stack, torch.row_stack}  # no 0-dim scalar exemption here: CUDA refuses any host tensor
_DEVICE_GET, _DATA_SET = torch.Tensor.device.__get__, torch.Tensor.data.__set__
_SPECIAL = {_DEVICE_GET, _DATA_SET, torch.Tensor.numpy, torch.Tensor.__array__}  # x.device, x.data = y, NumPy


class DeviceMixError(RuntimeError):
    """What CUDA would have raised: tensors or a generator on two devices, or NumPy on a GPU tensor."""


def home(x) -> str | None:
    """Where the check believes ``x`` lives: ``"gpu"``, ``"host"``, or None (unknown)."""
    return getattr(x, _MARK, None)


def _home_of_device(device) -> str:
    device = torch.device(device) if isinstance(device, (str, int)) else device
    return GPU if device.type == "cuda" or device == LESSON_DEVICE else HOST


def _flat(values):
    """The tensors among ``values`` and inside the lists, tuples and dicts among them (two levels: what torch's
    signatures take, e.g. ``torch.cat([x, y])``, a state dict). Faster than a full pytree walk, which matters:
    this runs at every torch call."""
    for v in values:
        if isinstance(v, torch.Tensor):
            yield v
        elif isinstance(v, (list, tuple)):
            yield from (t for t in v if isinstance(t, torch.Tensor))
        elif isinstance(v, dict):
            yield from (t for t in v.values() if isinstance(t, torch.Tensor))


def _mark(out, where: str | None) -> None:
    if where is None:
        return
    for t in _flat((out,)):
        setattr(t, _MARK, where)


def _tensors(args, kwargs) -> list[torch.Tensor]:
    return list(_flat(args)) + (list(_flat(kwargs.values())) if kwargs else [])


def _name(func) -> str:
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))


def _target(func, args, kwargs) -> str | None:
    """Where a transfer sends its tensor: ``.cpu()`` the host, ``.cuda()`` the GPU, ``.to(...)`` its device
    (or the home of a tensor it copies the device of); None when ``.to`` changes only the dtype."""
    if func is torch.Tensor.cpu:
        return HOST
    if func is torch.Tensor.cuda:
        return GPU
    for a in list(args[1:]) + [kwargs.get("device"), kwargs.get("other")]:
        if isinstance(a, torch.Tensor):
            return home(a)
        if isinstance(a, (torch.device, str)) and not (isinstance(a, str) and a.startswith("torch.")):
            try:
                return _home_of_device(a)
            except RuntimeError:  # a string that is not a device
                continue
    return None


class _Generator(torch.Generator):
    """``torch.Generator`` that remembers whether it was made for the lesson's device."""

    def __init__(self, device="cpu"):  # torch's own __new__ made the generator
        self.ganlib_home = _home_of_device(device)

    @property
    def device(self) -> torch.device:
        """``LESSON_DEVICE`` for a generator made for it, as a CUDA generator answers its CUDA device (torch answers
        "cpu" for ``torch.Generator("cpu:0")``, and ``profiles.draw``, which draws on ``generator.device``, would
        then draw for the host with a generator the check holds to be on the GPU)."""
        return LESSON_DEVICE if self.ganlib_home == GPU else super().device


class DeviceCheck(TorchFunctionMode):
    """The mode that marks, propagates and checks (see the module docstring)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SPECIAL:
            return self._special(func, args)
        inputs = _tensors(args, kwargs)
        if kwargs.get("generator") is not None:
            self._check_generator(func, kwargs, inputs)
        if func in _TRANSFER:
            return self._transfer(func, args, kwargs)
        out = func(*args, **kwargs)
        gpu = host = big_gpu = big_host = False  # one pass over the inputs: their marks, and those of >0-dim ones
        for t in inputs:
            mark = getattr(t, _MARK, None)
            if mark is None:
                continue
            big = t.dim() > 0 or func in _JOINS
            if mark == GPU:
                gpu, big_gpu = True, big_gpu or big
            else:
                host, big_host = True, big_host or big
        if big_gpu and big_host and func not in _EXEMPT and next(_flat((out,)), None) is not None:
            self._mix_error(func, inputs)  # (calls that return no tensor, e.g. shape queries, may compare devices)
        device = kwargs.get("device")
        where = _home_of_device(device) if device is not None else GPU if gpu else HOST if host or not inputs else None
        _mark(out, where)  # a factory without a device makes host tensors
        return out

    @staticmethod
    def _special(func, args):
        if func == _DEVICE_GET:
            return LESSON_DEVICE if home(args[0]) == GPU else func(*args)
        if func == _DATA_SET:
            func(*args)
            _mark(args[0], home(args[1]))
            return None
        if home(args[0]) == GPU:  # NumPy
            raise DeviceMixError(f"{_name(func)}: a tensor on the GPU cannot become a NumPy array; call .cpu() first")
        return func(*args)

    @staticmethod
    def _mix_error(func, inputs) -> None:
        shapes = ", ".join(f"{tuple(t.shape)} on the {home(t)}" for t in inputs if home(t) and t.dim() > 0)
        raise DeviceMixError(f"{_name(func)}: tensors on the GPU and on the host meet ({shapes}); on CUDA this "
                             "raises 'Expected all tensors to be on the same device'")

    @staticmethod
    def _check_generator(func, kwargs, inputs) -> None:
        generator = kwargs["generator"]
        gen_home = getattr(generator, "ganlib_home", _home_of_device(generator.device))
        if kwargs.get("device") is not None:
            draw_home = _home_of_device(kwargs["device"])
        else:
            draw_home = home(inputs[0]) if inputs else HOST
        if draw_home is not None and draw_home != gen_home:
            raise DeviceMixError(f"{_name(func)}: a generator on the {gen_home} draws numbers for the {draw_home}; "
                                 "on CUDA this raises \"Expected a 'cuda' device type for generator\": draw where "
                                 "the generator lives, then move the result (ganlib.profiles.draw)")

    @staticmethod
    def _transfer(func, args, kwargs):
        out = func(*args, **kwargs)
        where = _target(func, args, kwargs)
        if where is None:
            where = home(args[0])
        elif out is args[0]:  # no copy was needed on the CPU: a new tensor object, so the source keeps its mark
            out = out.view_as(out) if not out.is_sparse else out.clone()
        _mark(out, where)
        return out


def _load(load):
    """``torch.load`` that reads ``map_location=LESSON_DEVICE`` as the CPU and marks what it loaded as on the GPU."""
    def wrapped(*args, map_location=None, **kwargs):
        if not isinstance(map_location, (str, torch.device)) or _home_of_device(map_location) == HOST:
            return load(*args, map_location=map_location, **kwargs)
        out = load(*args, map_location="cpu", **kwargs)
        _mark(out, GPU)
        return out
    return wrapped


def _parameter_new(new):
    """``nn.Parameter.__new__`` that gives the parameter its data's mark (a deep copy of a model, G_ema, makes
    its parameters this way, out of the mode's sight)."""
    def wrapped(cls, data=None, requires_grad=True):
        param = new(cls, data, requires_grad)
        _mark(param, home(data))
        return param
    return wrapped


_active: DeviceCheck | None = None


def enable() -> None:
    """Check every torch call from now on in this process, and make ``profiles.setup`` hand out
    ``LESSON_DEVICE`` (through ``GANLIB_DEVICE``). For the copies of the lessons that ``make test`` runs."""
    global _active
    if _active is not None:
        return
    os.environ["GANLIB_DEVICE"] = f"{LESSON_DEVICE.type}:{LESSON_DEVICE.index}"
    torch.Generator, torch.load = _Generator, _load(torch.load)
    torch.nn.Parameter.__new__ = _parameter_new(torch.nn.Parameter.__new__)
    _active = DeviceCheck()
    _active.__enter__()


def enabled() -> bool:
    return _active is not None
