"""Model isolation: a method call must leave the network as it found it; what it changed is named and undone.

A ``ModelGuard`` keeps a pristine copy of a network's parameters and buffers (on their device) and a record of
what else a careless plugin can leave behind: hooks on any module (and torch's global module hooks), the
``requires_grad`` flags, the training flags, ``inplace`` flags, and the parameter objects themselves.
``changes()`` compares all of it after a call. The tensor comparison is one fused pass on the device with a
single host sync: it reads the weights once, as a forward pass does, so it costs a fraction of the floor
(measured in tests/benchmarks/test_isolation_speed.py). ``restore()`` puts every part back.
"""
from __future__ import annotations

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


def _same_layout(tensor: torch.Tensor, reference: torch.Tensor) -> bool:
    """Same shape, dtype and device (a plugin that casts or moves a parameter in place changed the model)."""
    return (tensor.shape, tensor.dtype, tensor.device) == (reference.shape, reference.dtype, reference.device)


class ModelGuard:
    """The reference state of one network; ``changes()`` names what a call altered, ``restore()`` undoes it."""

    def __init__(self, network: nn.Module):
        self.network = network
        self.tensors = self._tensors()
        self.pristine = [tensor.detach().clone() for _, tensor in self.tensors]
        # on an accelerator one flat copy per (device, dtype): the comparison is a cat and an equal, not 2 kernels
        # and a sync per tensor (launch latency, not bandwidth, is what a small model's check costs there)
        self.flat = {}
        for key, tensors in self._groups(self.tensors).items():
            if key[0].type != "cpu":
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
                torch.equal(torch.cat([t.detach().reshape(-1) for _, t in tensors]), self.flat[key])
                for key, tensors in self._groups(current).items() if key in self.flat
            ) and all(  # on the CPU torch.equal per tensor: no temporaries, no launches
                torch.equal(t.detach(), p) for (_, t), p in zip(current, self.pristine) if t.device.type == "cpu"
            ):
                return []
            return [name for (name, t), p in zip(current, self.pristine)
                    if not _same_layout(t, p) or not torch.equal(t.detach(), p)]

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
