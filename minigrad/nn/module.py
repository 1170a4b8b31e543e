"""``Module``: the base class of layers: parameters, sub-modules, buffers, state.

    class Affine(Module):
        def __init__(self, n):
            super().__init__()
            self.weight = Parameter(mg.ones(n))      # registered as "weight"
        def forward(self, x):
            return x * self.weight

Assigning a ``Parameter``, a ``Module`` or (through ``register_buffer``) an array
to an attribute registers it under that name; names nest with dots, as PyTorch's
(``encoder.layers.0.self_attn.in_proj_weight``), so a PyTorch ``state_dict``
converted to NumPy arrays loads here unchanged.
"""
from collections import OrderedDict

import numpy as np

from minigrad import backend as _backend
from minigrad.nn.parameter import Parameter
from minigrad.tensor import Tensor

__all__ = ["Module", "ModuleList", "Sequential", "StateDictError"]


class StateDictError(KeyError):
    """``load_state_dict`` found missing keys, unexpected keys or wrong shapes."""

    def __str__(self):                      # KeyError would quote the message
        return self.args[0]


class Module:
    """Base class of every layer. Subclasses define ``forward``; call the module.

    >>> import minigrad as mg
    >>> class TwoLayer(mg.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden = mg.nn.Linear(4, 8)         # assigned: registered by name
    ...         self.out = mg.nn.Linear(8, 2)
    ...     def forward(self, x):
    ...         return self.out(mg.relu(self.hidden(x)))
    >>> net = TwoLayer()
    >>> net(mg.randn(3, 4)).shape
    (3, 2)
    >>> [name for name, _ in net.named_parameters()]
    ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration ---------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() is called: "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )
        if name in self._buffers and (value is None or isinstance(value, Tensor)) \
                and not isinstance(value, Parameter):
            self._buffers[name] = value          # a new value for a registered buffer
            object.__setattr__(self, name, value)
            return
        if name in self._parameters and (value is None or isinstance(value, Parameter)):
            self._parameters[name] = value       # replaced in its place (None: disabled slot)
            object.__setattr__(self, name, value)
            return
        if name in self._parameters and isinstance(value, Tensor):
            raise TypeError(f"cannot assign a Tensor to parameter {name!r} of {type(self).__name__}: "
                            f"expected a Parameter or None (wrap it: Parameter(tensor))")
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        self._non_persistent.discard(name)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        self._non_persistent.discard(name)
        if name in self.__dict__:
            object.__delattr__(self, name)

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None, e.g. a disabled bias) as ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: expected a Parameter or None for {name!r}, "
                            f"got {type(param).__name__}")
        self.__dict__.pop(name, None)
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """Register a Tensor that is state but not a parameter (no gradient, no update).

        A persistent buffer is part of ``state_dict``; a non-persistent one is
        recomputed by the constructor (a positional-encoding table).
        """
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(tensor)
        self._buffers[name] = tensor
        if not persistent:
            self._non_persistent.add(name)
        object.__setattr__(self, name, tensor)

    # -- calling --------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- walking the tree -----------------------------------------------------
    def named_modules(self, prefix=""):
        """(name, module) for this module and every sub-module, depth first."""
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def named_parameters(self, prefix="", recurse=True):
        """(dotted name, Parameter) for every parameter, each shared one once."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_name}.{name}" if module_name else name), param

    def parameters(self, recurse=True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix=""):
        for module_name, module in self.named_modules(prefix):
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{module_name}.{name}" if module_name else name), buf

    def num_parameters(self):
        """The number of scalars in all parameters."""
        return sum(p.size for p in self.parameters())

    # -- state ----------------------------------------------------------------
    def state_dict(self):
        """An ordered dict, dotted name -> NumPy array (a copy), of every parameter
        and persistent buffer, as ``torch.nn.Module.state_dict`` (a shared
        parameter appears under each of its names, as there)."""
        return OrderedDict((name, tensor.numpy().copy()) for name, tensor in self._state_tensors().items())

    def _state_tensors(self):
        tensors = OrderedDict()
        for module_name, module in self.named_modules():
            dot = f"{module_name}." if module_name else ""
            for name, param in module._parameters.items():
                if param is not None:
                    tensors[dot + name] = param
            for name, buf in module._buffers.items():
                if buf is not None and name not in module._non_persistent:
                    tensors[dot + name] = buf
        return tensors

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy, CuPy, Tensors, or anything ``numpy.asarray`` takes, such
        as a PyTorch tensor's ``.numpy()``) into the parameters and buffers, in place.

        Each array is converted to the dtype and backend of the tensor it replaces.
        With ``strict`` (the default) any missing or unexpected key is an error;
        a shape mismatch always is. All problems are listed in one
        ``StateDictError`` and nothing is changed when there is one.
        Returns (missing_keys, unexpected_keys), as PyTorch.
        """
        own = self._state_tensors()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        arrays, mismatched = {}, []
        for key, target in own.items():
            if key not in state_dict:
                continue
            array = _host_array(state_dict[key])
            if tuple(array.shape) != tuple(target.shape):
                mismatched.append(f"{key}: expected shape {tuple(target.shape)}, got {tuple(array.shape)}")
            arrays[key] = array
        problems = []
        if mismatched:
            problems.append("shape mismatches:\n    " + "\n    ".join(mismatched))
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if problems:
            raise StateDictError(
                f"load_state_dict into {type(self).__name__} failed;\n  " + "\n  ".join(problems)
            )
        for key, array in arrays.items():
            target = own[key]
            backend = _backend.backend_of(target.data)
            target.data = backend.from_numpy(np.ascontiguousarray(array, dtype=target.dtype))
        return missing, unexpected

    # -- modes and placement --------------------------------------------------
    def train(self, mode=True):
        """Training mode (dropout active) for this module and all sub-modules."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def zero_grad(self):
        """Forget every parameter's gradient (``grad = None``, PyTorch's default)."""
        for param in self.parameters():
            param.grad = None

    def to(self, target):
        """Move every parameter and buffer to a backend ("numpy", "cupy") or convert
        the floating ones to a dtype, in place (the Parameter objects stay the same,
        so an optimizer holding them keeps working). Returns self."""
        is_backend = isinstance(target, str) and target in _backend.backend_names()
        new = _backend.backend_by_name(target) if is_backend else None
        if not is_backend:
            try:
                is_float = np.dtype(target).kind == "f"
            except TypeError:
                is_float = False
            if not is_float:
                raise ValueError(f"{type(self).__name__}.to: expected a backend "
                                 f"{list(_backend.backend_names())} or a float dtype, got {target!r}")
        for tensor in list(self.parameters()) + [b for _, b in self.named_buffers()]:
            if is_backend:
                tensor.data = _move(tensor.data, new)
                if tensor.grad is not None:
                    tensor.grad = _move(tensor.grad, new)
            elif tensor.dtype.kind == "f":
                tensor.data = tensor.data.astype(target)
                if tensor.grad is not None:
                    tensor.grad = tensor.grad.astype(target)
        return self

    def double(self):
        """float64 parameters and buffers (for gradient checks)."""
        return self.to("float64")

    def float(self):
        """float32 parameters and buffers."""
        return self.to("float32")

    def apply(self, fn):
        """Call ``fn(module)`` on every sub-module, then on self (PyTorch's order)."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -- printing -------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _host_array(value):
    """A state_dict entry (Tensor, backend array, or anything numpy.asarray takes) in NumPy."""
    if isinstance(value, Tensor):
        return value.numpy()
    if _backend.is_array(value):
        return _backend.to_numpy(value)
    return np.asarray(value)


def _move(array, backend):
    if _backend.backend_of(array) is backend:
        return array
    return backend.from_numpy(_backend.to_numpy(array))


class ModuleList(Module):
    """A list of modules, registered as "0", "1", ... (``layers.0.linear1.weight``).

    >>> import minigrad as mg
    >>> layers = mg.nn.ModuleList(mg.nn.Linear(4, 4) for _ in range(2))
    >>> list(layers.state_dict())
    ['0.weight', '0.bias', '1.weight', '1.bias']
    """

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return list(self._modules.values())[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(ModuleList):
    """Modules applied one after the other: ``Sequential(a, b)(x) == b(a(x))``.

    >>> import minigrad as mg
    >>> net = mg.nn.Sequential(mg.nn.Linear(4, 8), mg.nn.ReLU(), mg.nn.Linear(8, 2))
    >>> net(mg.randn(3, 4)).shape
    (3, 2)
    """

    def __init__(self, *modules):
        super().__init__(modules)

    def forward(self, x):
        for module in self:
            x = module(x)
        return x
