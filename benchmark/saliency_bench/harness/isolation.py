"""Model isolation: a method call must leave the network as it found it; what it changed is named and undone.

A ``ModelGuard`` keeps a pristine copy of a network's parameters and buffers (on their device) and a record of
what else a careless plugin can leave behind: hooks on any module (and torch's global module hooks), the
``requires_grad`` flags, the training flags, ``inplace`` flags, and the parameter objects themselves.
``changes()`` compares all of it after a call. The tensor comparison is one fused pass on the device with a
single host sync: it reads the weights once, as a forward pass does, so it costs a fraction of the floor
(measured in tests/benchmarks/test_isolation_speed.py). ``restore()`` puts every part back. Values are compared
bit for bit (an integer view of each tensor's bytes), so a weight that is NaN equals itself.

A ``TorchState`` does the same for what a call can change of torch's process-wide state: its flags (default dtype,
grad mode, oneDNN / cuDNN / TF32 settings, deterministic algorithms, threads, default device) and the classes and
functions every model computes with (each ``torch.nn`` module class, ``torch.nn.functional``, ``torch.Tensor``,
and the classes of the guarded network), so a method that patches ``torch.nn.ReLU.forward`` is named and undone.
``AttributeGuard`` watches the attributes of the model wrapper (its classes, input size, randomisation order...).
"""
from __future__ import annotations

import functools
import operator
import types

import torch
from torch import nn
from torch.nn.modules import module as torch_module

HOOK_DICTS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
    "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs",
    "_state_dict_hooks", "_load_state_dict_pre_hooks",
)
MODULE_TABLES = ("_modules", "_parameters", "_buffers")  # a module's children, parameters and buffers
GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                "_global_backward_pre_hooks")


def _signature(table: dict | None) -> tuple:
    """(size, last key) of a hook dictionary: handle ids only grow, so any added, removed or replaced hook changes it."""
    if not table:
        return (0, None)
    return (len(table), next(reversed(table)))


def _hook_keys(network: nn.Module) -> dict[str, dict[str, tuple]]:
    """``{module name: {hook dict: its signature}}`` of every module, plus torch's global module hooks."""
    keys = {name: {attr: _signature(getattr(module, attr, None)) for attr in HOOK_DICTS}
            for name, module in network.named_modules()}
    keys["<global>"] = {attr: _signature(getattr(torch_module, attr, None)) for attr in GLOBAL_HOOKS}
    return keys


_INTEGER_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes as integers of its element size: equal bits compare equal (NaN too), others differ."""
    if tensor.is_complex():
        tensor = torch.view_as_real(tensor)
    if tensor.is_floating_point() or tensor.dtype == torch.bool:
        return tensor.view(_INTEGER_OF_SIZE[tensor.element_size()])
    return tensor


def same_bits(tensor: torch.Tensor, reference: torch.Tensor) -> bool:
    """Whether two tensors of one layout hold the same bits (``torch.equal`` calls NaN unequal to itself)."""
    return torch.equal(_bits(tensor.detach()), _bits(reference.detach()))


def _same_layout(tensor: torch.Tensor, reference: torch.Tensor) -> bool:
    """Same shape, dtype and device (a plugin that casts or moves a parameter in place changed the model)."""
    return (tensor.shape, tensor.dtype, tensor.device) == (reference.shape, reference.dtype, reference.device)


class ModelGuard:
    """The reference state of one network; ``changes()`` names what a call altered, ``restore()`` undoes it."""

    def __init__(self, network: nn.Module, flat_devices: tuple[str, ...] | None = None):
        self.network = network
        # device types compared as one flat copy per (device, dtype); default: every accelerator (not the CPU)
        self.flat_devices = flat_devices if flat_devices is not None else tuple(
            {t.device.type for t in [*network.parameters(), *network.buffers()]} - {"cpu"})
        self.tensors = self._tensors()
        self.pristine = [tensor.detach().clone() for _, tensor in self.tensors]
        # on an accelerator one flat copy per (device, dtype): the comparison is a cat and an equal, not 2 kernels
        # and a sync per tensor (launch latency, not bandwidth, is what a small model's check costs there)
        self.flat = {}
        for key, tensors in self._groups(self.tensors).items():
            if key[0].type in self.flat_devices:
                self.flat[key] = torch.cat([t.detach().reshape(-1) for _, t in tensors])
        self.objects = {name: id(tensor) for name, tensor in self.tensors}
        self.flags = self._flags()
        self.hooks = _hook_keys(network)
        self.hook_tables = {  # the hooks present now (key -> hook), to put back exactly what was there
            (name, attr): dict(getattr(module, attr, None) or {}) for name, module in network.named_modules()
            for attr in HOOK_DICTS
        }
        self.global_tables = {attr: dict(getattr(torch_module, attr, {})) for attr in GLOBAL_HOOKS}
        self.modules = dict(network.named_modules(remove_duplicate=False))
        self.tables = {(name, attr): dict(getattr(module, attr)) for name, module in self.modules.items()
                       for attr in MODULE_TABLES}
        self.structure = self._structure()
        self.forwards = {name: m.__dict__["forward"] for name, m in self.modules.items() if "forward" in m.__dict__}
        self.tensor_hooks = {name: (dict(p._backward_hooks) if p._backward_hooks else None)
                             for name, p in network.named_parameters(remove_duplicate=False)}
        self.classes = network_classes(network)

    @staticmethod
    def _groups(tensors: list[tuple[str, torch.Tensor]]) -> dict[tuple, list[tuple[str, torch.Tensor]]]:
        """Tensors grouped by (device, dtype), in their fixed order."""
        groups: dict[tuple, list[tuple[str, torch.Tensor]]] = {}
        for name, tensor in tensors:
            groups.setdefault((tensor.device, tensor.dtype), []).append((name, tensor))
        return groups

    def _tensors(self) -> list[tuple[str, torch.Tensor]]:
        """Every parameter and buffer, in a fixed order."""
        named = list(self.network.named_parameters(remove_duplicate=False))
        named += [(f"buffer:{name}", b) for name, b in self.network.named_buffers(remove_duplicate=False)]
        return named

    def _structure(self) -> list[tuple]:
        """Each module's name, identity, and the identity of a ``forward`` set on the instance (0 if none)."""
        return [(name, id(module), id(module.__dict__.get("forward", 0)) if "forward" in module.__dict__ else 0)
                for name, module in self.network.named_modules(remove_duplicate=False)]

    def _flags(self) -> dict[str, object]:
        """requires_grad, a stored .grad and tensor hooks of each parameter; training and inplace of each module."""
        flags: dict[str, object] = {}
        for name, p in self.network.named_parameters(remove_duplicate=False):
            flags[f"{name}.requires_grad"] = p.requires_grad
            flags[f"{name}.grad"] = p.grad is not None
            flags[f"{name}.tensor_hooks"] = _signature(p._backward_hooks)
        for name, module in self.network.named_modules():
            flags[f"{name or '<root>'}.training"] = module.training
            if hasattr(module, "inplace"):
                flags[f"{name or '<root>'}.inplace"] = module.inplace
        return flags

    def refresh(self) -> None:
        """Accept the network's current values as the reference (a check that changes a model on purpose)."""
        with torch.no_grad():
            for (_, tensor), copy in zip(self.tensors, self.pristine):
                copy.copy_(tensor)
            for key, tensors in self._groups(self.tensors).items():
                if key in self.flat:
                    torch.cat([t.detach().reshape(-1) for _, t in tensors], out=self.flat[key])

    def changes(self) -> list[str]:
        """What differs from the reference: hooks, flags, replaced or changed parameters/buffers (empty if none)."""
        found = []
        if self._structure() != self.structure:
            found.append("modules replaced, added or removed, or a module's forward replaced")
        hooks = _hook_keys(self.network)
        added = [f"{attr.strip('_')} on {name or '<root>'}" for name, attrs in hooks.items()
                 for attr, keys in attrs.items() if keys != self.hooks.get(name, {}).get(attr, (0, None))]
        if added:
            found.append("hooks: " + ", ".join(added[:3]) + (f" (+{len(added) - 3})" if len(added) > 3 else ""))
        flags = self._flags()
        flipped = [key for key in self.flags.keys() | flags.keys() if self.flags.get(key) != flags.get(key)]
        if flipped:
            found.append("flags: " + ", ".join(sorted(flipped)[:3]) + (f" (+{len(flipped) - 3})" if len(flipped) > 3 else ""))
        current = self._tensors()
        if [(n, id(t)) for n, t in current] != list(self.objects.items()):
            found.append("parameters or buffers replaced")
        else:
            changed = self._changed_values(current)
            if changed:
                found.append("values of " + ", ".join(changed[:3]) + (f" (+{len(changed) - 3})" if len(changed) > 3 else ""))
        return found

    def _changed_values(self, current: list[tuple[str, torch.Tensor]]) -> list[str]:
        """Names of tensors whose values differ from the pristine copy (one device pass, one host sync)."""
        if not current:
            return []
        with torch.no_grad():
            same_layout = all(_same_layout(t, p) for (_, t), p in zip(current, self.pristine))
            if same_layout and all(  # the fast path: one cat and one equal per accelerator group
                same_bits(torch.cat([t.detach().reshape(-1) for _, t in tensors]), self.flat[key])
                for key, tensors in self._groups(current).items() if key in self.flat
            ) and all(  # on the CPU one equal per tensor: no temporaries, no launches
                same_bits(t, p) for (_, t), p in zip(current, self.pristine) if t.device.type not in self.flat_devices
            ):
                return []
            return [name for (name, t), p in zip(current, self.pristine)
                    if not _same_layout(t, p) or not same_bits(t, p)]

    def restore(self) -> None:
        """Put back the modules, parameter and buffer objects and their values, the flags and exactly the hooks."""
        for (name, attr), saved in self.tables.items():  # children, parameters, buffers of every original module
            table = getattr(self.modules[name], attr)
            table.clear()
            table.update(saved)
        for name, module in self.modules.items():  # a forward set on the instance since is removed
            module.__dict__.pop("forward", None)
            if name in self.forwards:
                module.__dict__["forward"] = self.forwards[name]
        with torch.no_grad():
            for (name, original), copy in zip(self.tensors, self.pristine):
                if not _same_layout(original, copy):
                    original.data = copy.clone()
                else:
                    original.copy_(copy)
        for name, module in self.network.named_modules():
            for attr in HOOK_DICTS:
                table = getattr(module, attr, None)
                if table is not None:
                    table.clear()
                    table.update(self.hook_tables.get((name, attr), {}))
        for attr in GLOBAL_HOOKS:
            table = getattr(torch_module, attr)
            table.clear()
            table.update(self.global_tables[attr])
        parameters = dict(self.network.named_parameters(remove_duplicate=False))
        for key, value in self.flags.items():
            name, _, flag = key.rpartition(".")
            if flag == "requires_grad":
                parameters[name].requires_grad_(value)
            elif flag == "grad":
                if not value:
                    parameters[name].grad = None
            elif flag == "tensor_hooks":
                saved = self.tensor_hooks[name]
                parameters[name]._backward_hooks = None if saved is None else type(saved)(saved)
            else:
                setattr(self.modules["" if name == "<root>" else name], flag, value)


def network_classes(network: nn.Module) -> tuple[type, ...]:
    """The classes a network's modules are made of, their bases included (``object`` left out), in a fixed order."""
    found: dict[type, None] = {}
    for module in network.modules():
        for cls in type(module).__mro__:
            if cls is not object:
                found.setdefault(cls, None)
    return tuple(found)


def _attribute(path: str) -> tuple[object, str]:
    """``("backends.cudnn.benchmark")`` -> (torch.backends.cudnn, "benchmark")."""
    owner, _, name = path.rpartition(".")
    return functools.reduce(getattr, owner.split("."), torch), name


def _switch(enabled: bool, variant: bool, name: str) -> str:
    """``off``, ``on`` or ``on (NAME)``: a setting made of a switch and a variant of it."""
    return "off" if not enabled else f"on ({name})" if variant else "on"


# torch's process-wide settings a call can change: (label, read, write); attribute paths under ``torch``
SETTINGS: tuple[tuple[str, object, object], ...] = (
    ("default dtype", torch.get_default_dtype, torch.set_default_dtype),
    ("grad mode", torch.is_grad_enabled, torch.set_grad_enabled),
    ("default device", lambda: torch.get_default_device(), lambda device: torch.set_default_device(
        None if torch.device(device).type == "cpu" else device)),
    ("threads", torch.get_num_threads, torch.set_num_threads),
    ("deterministic algorithms", lambda: _switch(torch.are_deterministic_algorithms_enabled(),
                                                 torch.is_deterministic_algorithms_warn_only_enabled(), "warn only"),
     lambda value: torch.use_deterministic_algorithms(value != "off", warn_only=value == "on (warn only)")),
    ("anomaly detection", lambda: _switch(torch.is_anomaly_enabled(), not torch.is_anomaly_check_nan_enabled(),
                                          "no NaN check"),
     lambda value: torch.set_anomaly_enabled(value != "off", value != "on (no NaN check)")),
    ("float32 matmul precision", torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
)
ATTRIBUTE_SETTINGS = (
    "backends.mkldnn.enabled", "backends.mkldnn.deterministic", "backends.cudnn.enabled", "backends.cudnn.benchmark",
    "backends.cudnn.benchmark_limit", "backends.cudnn.deterministic", "backends.cudnn.allow_tf32",
    "backends.cuda.matmul.allow_tf32", "backends.cuda.matmul.allow_fp16_reduced_precision_reduction",
    "backends.cuda.matmul.allow_bf16_reduced_precision_reduction", "backends.fp32_precision",
    "backends.cuda.matmul.fp32_precision", "backends.cudnn.conv.fp32_precision", "backends.cudnn.rnn.fp32_precision",
    "backends.mkldnn.matmul.fp32_precision", "backends.mkldnn.conv.fp32_precision",
    "backends.mkldnn.rnn.fp32_precision", "backends.opt_einsum.enabled",
)
_UNREADABLE = object()


def _read(read) -> object:
    """A setting's value; ``_UNREADABLE`` where torch refuses to say (a mix of its legacy and new TF32 switches)."""
    try:
        return read()
    except Exception:  # noqa: BLE001 - torch raises RuntimeError for a mixed TF32 state
        return _UNREADABLE


def _settings() -> dict[str, tuple]:
    """``{label: (read, write)}`` of every setting this torch has."""
    table = {label: (read, write) for label, read, write in SETTINGS}
    for path in ATTRIBUTE_SETTINGS:
        try:
            owner, name = _attribute(path)
            getattr(owner, name)
        except AttributeError:  # a setting this version of torch does not have
            continue
        except Exception:  # noqa: BLE001 - exists, but unreadable now
            pass
        table[f"torch.{path}"] = (functools.partial(getattr, owner, name), functools.partial(setattr, owner, name))
    return table


@functools.cache
def _watched_settings() -> dict[str, tuple]:
    return _settings()


@functools.cache
def torch_namespaces(every_module_class: bool = False) -> tuple[tuple[str, object], ...]:
    """(label, namespace) of what every model computes with: torch.nn.functional, torch.Tensor, torch.nn.Module.

    With ``every_module_class``, each class of torch.nn too (what a plugin's import is checked against).
    """
    classes = sorted({obj for obj in vars(nn).values() if isinstance(obj, type) and issubclass(obj, nn.Module)},
                     key=lambda cls: cls.__name__) if every_module_class else [nn.Module]
    return (("torch.nn.functional", nn.functional), ("torch.Tensor", torch.Tensor),
            ("torch.nn.Parameter", nn.Parameter), *((f"torch.nn.{cls.__name__}", cls) for cls in classes))


def _label(cls: type) -> str:
    """``torch.nn.ReLU`` for a class torch.nn exports, else its module and name."""
    exported = getattr(nn, cls.__name__, None) is cls
    return f"torch.nn.{cls.__name__}" if exported else f"{cls.__module__}.{cls.__qualname__}"


def _show(value: object) -> str:
    """A setting's value as a message shows it: ``float32`` for ``torch.float32``."""
    if value is _UNREADABLE:
        return "unreadable"
    return str(value).removeprefix("torch.") if isinstance(value, torch.dtype) else str(value)


def _lazy(name: str, value: object) -> bool:
    """An attribute Python or an import adds on its own (a class's empty ``__annotations__``, a submodule)."""
    return name == "__annotations__" or isinstance(value, types.ModuleType)


class TorchState:
    """torch's process-wide settings and its classes' and functions' dictionaries as they were, to name and undo.

    Watched: torch.nn.functional, torch.Tensor, torch.nn.Module and ``classes`` (a method call passes the classes
    its network is made of: a class-level patch changes what neighbours compute through the modules they run), or
    every torch.nn class (a plugin's import). ``changes()`` names what differs now, ``restore()`` puts it back.
    """

    def __init__(self, classes: tuple[type, ...] = (), every_module_class: bool = False):
        self.values = {label: _read(read) for label, (read, _) in _watched_settings().items()}
        watched = torch_namespaces(every_module_class)
        covered = {id(namespace) for _, namespace in watched}
        extra = tuple((_label(cls), cls) for cls in classes if id(cls) not in covered)
        self.namespaces = tuple((label, namespace, dict(vars(namespace))) for label, namespace in watched + extra)

    def _changed_settings(self) -> list[str]:
        """``label before -> after`` of each setting that differs."""
        found = []
        for label, (read, _) in _watched_settings().items():
            before, after = self.values[label], _read(read)
            if before is not after and before != after:
                found.append(f"{label} {_show(before)} -> {_show(after)}")
        return found

    def _changed_namespaces(self) -> list[tuple[str, object, dict, list[str]]]:
        """(label, namespace, saved, names of the entries replaced, added or removed) of each changed namespace."""
        found = []
        for label, namespace, saved in self.namespaces:
            now = vars(namespace)
            if len(now) == len(saved) and all(map(operator.is_, now.values(), saved.values())) \
                    and now.keys() == saved.keys():
                continue
            names = [name for name in now.keys() | saved.keys()
                     if now.get(name, _UNREADABLE) is not saved.get(name, _UNREADABLE)
                     and not (name not in saved and _lazy(name, now[name]))]
            if names:
                found.append((label, namespace, saved, sorted(names)))
        return found

    def changes(self) -> list[str]:
        """Settings changed (``default dtype float32 -> float64``), attributes patched (``torch.nn.ReLU.forward``)."""
        patched = [f"{label}.{name}" for label, _, _, names in self._changed_namespaces() for name in names]
        if patched:
            patched = ["patched " + ", ".join(patched[:3]) + (f" (+{len(patched) - 3})" if len(patched) > 3 else "")]
        return self._changed_settings() + patched

    def restore(self) -> None:
        """Put back every changed setting and every replaced, added or removed attribute."""
        for label, (read, write) in _watched_settings().items():
            before = self.values[label]
            if before is not _UNREADABLE and _read(read) != before:
                write(before)
        for _, namespace, saved, names in self._changed_namespaces():
            for name in names:
                if name in saved:
                    setattr(namespace, name, saved[name])
                else:
                    delattr(namespace, name)


class AttributeGuard:
    """An object's attributes (the model wrapper's) as they were, lists and dicts by value, to name and undo.

    ``changes()`` names those replaced, added, removed or altered in place, ``restore()`` puts them back.
    """

    def __init__(self, obj: object, skip: tuple[str, ...] = ("network",)):
        self.obj = obj
        self.skip = skip
        self.saved = {name: (value, _copy(value)) for name, value in vars(obj).items() if name not in skip}

    def changes(self) -> list[str]:
        """The names of the attributes that differ."""
        now = {name: value for name, value in vars(self.obj).items() if name not in self.skip}
        return sorted(name for name in now.keys() | self.saved.keys()
                      if name not in now or name not in self.saved or now[name] is not self.saved[name][0]
                      or (self.saved[name][1] is not None and now[name] != self.saved[name][1]))

    def restore(self) -> None:
        """Every attribute back to its object and contents."""
        for name in self.changes():
            if name not in self.saved:
                delattr(self.obj, name)
                continue
            value, contents = self.saved[name]
            if contents is not None:  # the same list or dict, its contents put back
                value.clear()
                value.update(contents) if isinstance(value, dict) else value.extend(contents)
            setattr(self.obj, name, value)


def _copy(value: object) -> list | dict | None:
    """A shallow copy of a list or dict (to see it altered in place); None for anything else."""
    return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else None
