"""Official FRRN weights (Lasagne ``.npz``) -> this plugin's FRRN.

The official release (TobyPDE/FRRN, Theano/Lasagne) saves a model with::

    np.savez(filename, *lasagne.layers.get_all_param_values(output_layers))

(``dltools/nnet.py``, ``NeuralNetwork.save_model``), so the file holds
``arr_0``, ``arr_1``, ... with no names: one array per parameter, in the
order of ``lasagne.layers.get_all_layers``, a depth-first post-order
traversal of the layer graph from the output that visits the inputs of a
merge layer (concat, sum) in the order they were given, then each layer's
parameters in creation order. The conversion therefore depends on the
graph, not only on the order the layers were built in: for instance the 1x1
projection of a residual unit is built first but comes after its two 3x3
convolutions, because the unit ends in ``ElemwiseSumLayer([convs,
projection])``.

:func:`frrn_lasagne_layout` rebuilds that graph, mirroring the builders in
``dltools/architectures.py`` (``FRRNABuilder`` / ``FRRNBBuilder``:
``add_conv``, ``add_ru``, ``add_frru``), with this plugin's key attached to
every parameter, and runs the traversal of ``get_all_layers`` (Lasagne
0.2) on it. Lasagne itself is not needed. What was verified and what was
assumed is listed in ``docs/model_converters.md``; in short, the
traversal and the builders were read from their source, but no official
``.npz`` file was available to test against.

Per-array rules:

* ``Conv2DLayer.W`` (out, in, kh, kw): Lasagne convolves with
  ``flip_filters=True`` by default (a true convolution; the official code
  never changes it), PyTorch cross-correlates, so the filters are flipped:
  ``W[:, :, ::-1, ::-1]``. Convolutions followed by batch norm, and the
  residual-unit projections, have no bias (``b=None``); the FRRU's 1x1
  convolution to the residual stream and the classifier have one.
* ``BatchNormLayer``: ``beta``, ``gamma``, ``mean``, ``inv_std`` (in this
  order). Lasagne stores the *inverse standard deviation*, already including
  its epsilon (``inv_std = 1 / sqrt(var + 1e-4)``, averaged over batches)
  and normalises at test time with ``(x - mean) * gamma * inv_std +
  beta``. PyTorch computes ``1 / sqrt(running_var + eps)`` with its own
  ``eps`` (1e-5 by default), so ``running_var = 1 / inv_std**2 - eps`` with
  *PyTorch's* eps gives exactly Lasagne's test-time output; Lasagne's 1e-4
  is already inside ``inv_std`` and must not be subtracted again.
"""
import os.path as osp
import zipfile
from collections import OrderedDict, deque

import numpy as np
import torch

from ..models.backbones.frrn import FRRN

#: Table 1 of the paper, as the backbone defines it.
ARCH_SETTINGS = FRRN.arch_settings


class _Layer:
    """A node of the Lasagne graph: its input layers and parameters."""

    def __init__(self, *inputs, params=()):
        self.inputs = inputs
        self.params = list(params)


def _get_all_layers(output):
    """``lasagne.layers.get_all_layers`` (Lasagne 0.2), on :class:`_Layer`.

    Depth-first; a layer is appended once all its inputs are.
    """
    queue = deque([output])
    seen, done, result = set(), set(), []
    while queue:
        layer = queue[0]
        if layer not in seen:
            seen.add(layer)
            queue.extendleft(reversed(layer.inputs))
        else:
            queue.popleft()
            if layer not in done:
                result.append(layer)
                done.add(layer)
    return result


class _Builder:
    """Mirror of the official ``FRRNBuilderBase`` with our keys."""

    def __init__(self, residual_channels):
        self.lanes = residual_channels

    @staticmethod
    def conv(net, key, c_in, c_out, k, bn=True, bias=False):
        """``add_conv``: Conv2DLayer (+ BatchNormLayer) (+ ReLU)."""
        conv_key = key + '.conv' if key != 'decode_head.conv_seg' else key
        params = [(conv_key + '.weight', 'W', (c_out, c_in, k, k))]
        if bias:
            params.append((conv_key + '.bias', 'b', (c_out, )))
        net = _Layer(net, params=params)
        if bn:
            b = key + '.bn.'
            net = _Layer(
                net,
                params=[(b + 'bias', 'beta', (c_out, )),
                        (b + 'weight', 'gamma', (c_out, )),
                        (b + 'running_mean', 'mean', (c_out, )),
                        (b + 'running_var', 'inv_std', (c_out, ))])
        return net

    def ru(self, net, key, c_in, c_out):
        """``add_ru``: sum([conv-BN-ReLU-conv-BN, projection or input])."""
        net_in = net
        if c_in != c_out:
            net_in = self.conv(net, key + '.shortcut', c_in, c_out, 1,
                               bn=False)
        net = self.conv(net, key + '.conv1', c_in, c_out, 3)
        net = self.conv(net, key + '.conv2', c_out, c_out, 3)
        return _Layer(net, net_in)

    def frru(self, y, z, key, c_in, c_out):
        """``add_frru``: concat([y, pool(z)]), 2 convs, 1x1 back to z."""
        y = _Layer(y, _Layer(z))  # concat with the max-pooled z
        y = self.conv(y, key + '.conv1', c_in + self.lanes, c_out, 3)
        y = self.conv(y, key + '.conv2', c_out, c_out, 3)
        r = self.conv(y, key + '.conv_res', c_out, self.lanes, 1, bn=False,
                      bias=True)
        return y, _Layer(z, _Layer(r))  # z + upscale(r)


def frrn_lasagne_layout(arch='A',
                        num_classes=19,
                        in_channels=3,
                        base_channels=48,
                        residual_channels=32,
                        num_stem_units=3):
    """The arrays of an official FRRN ``.npz``, in file order.

    Args:
        arch (str): ``'A'`` or ``'B'``.
        num_classes (int): Classes of the classifier. Default: 19.
        in_channels, base_channels, residual_channels, num_stem_units
            (int): As in ``FRRN``; the official models use 3, 48, 32, 3.

    Returns:
        list[tuple[str, str, tuple]]: ``(our key, kind, Lasagne shape)``
        per array ``arr_i``; kind is ``W``, ``b``, ``beta``, ``gamma``,
        ``mean`` or ``inv_std``.
    """
    if arch not in ARCH_SETTINGS:
        raise ValueError(f'arch must be one of {sorted(ARCH_SETTINGS)}, got '
                         f'{arch!r}')
    setting = ARCH_SETTINGS[arch]
    b = _Builder(residual_channels)
    bb = 'backbone.'
    net = b.conv(_Layer(), bb + 'stem_conv', in_channels, base_channels, 5)
    for i in range(num_stem_units):
        net = b.ru(net, f'{bb}stem_units.{i}', base_channels, base_channels)
    z = b.conv(net, bb + 'residual_conv', base_channels, residual_channels,
               1)
    y, channels = net, base_channels
    for part, stages in (('encoder', setting['encoder']),
                         ('decoder', setting['decoder'])):
        for s, (num_units, c_out) in enumerate(stages):
            y = _Layer(y)  # max-pool or bilinear upscale
            for u in range(num_units):
                y, z = b.frru(y, z, f'{bb}{part}_stages.{s}.{u}', channels,
                              c_out)
                channels = c_out
    net = _Layer(_Layer(y), z)  # concat([upscale(y), z])
    c_in = channels + residual_channels
    for i in range(num_stem_units):
        net = b.ru(net, f'{bb}end_units.{i}', c_in, base_channels)
        c_in = base_channels
    net = b.conv(net, 'decode_head.conv_seg', base_channels, num_classes, 1,
                 bn=False, bias=True)
    return [p for layer in _get_all_layers(net) for p in layer.params]


def load_lasagne_npz(path, trust=False):
    """Read the arrays ``arr_0 ... arr_{n-1}`` of an official ``.npz``.

    Arrays of Python objects (pickled) are refused, as unpickling them can
    run code; with ``trust`` they are unpickled (``--trust-checkpoint``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an ``.npz`` of unnamed arrays.
        UntrustedCheckpointError: an array holds pickled objects and the
            file is not trusted; nothing of it was unpickled.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such file')
    try:
        data = np.load(path, allow_pickle=trust)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f'{path}: not a readable .npz file ({err})') from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f'{path}: a single .npy array, not an .npz of '
                         'Lasagne parameters')
    try:
        with data:
            names = list(data.files)
            expected = [f'arr_{i}' for i in range(len(names))]
            if not names or sorted(names) != sorted(expected):
                raise ValueError(
                    f'{path}: not a Lasagne parameter file: its arrays are '
                    f'named {names[:5]}, expected arr_0, arr_1, ... '
                    '(np.savez(f, *get_all_param_values(net)))')
            arrays = []
            for name in expected:
                try:
                    arrays.append(data[name])
                except ValueError as err:
                    if 'allow_pickle' not in str(err):
                        raise
                    raise _object_array_refused(path, name) from None
            return arrays
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f'{path}: not a readable .npz file ({err})') from err


def _object_array_refused(path, name):
    """The error for the array ``name`` of ``path``, which holds pickled
    objects: it names the globals of the pickle (read, not run)."""
    from ..utils.checkpoint import UntrustedCheckpointError, globals_in_pickle
    with zipfile.ZipFile(path) as archive:
        data = archive.read(name + '.npy')
    # .npy: magic (6 bytes), version (2), header length (2 bytes in
    # version 1, else 4), header, then the pickle
    size = 2 if data[6] == 1 else 4
    start = 8 + size + int.from_bytes(data[8:8 + size], 'little')
    refused = globals_in_pickle(data[start:], refused_only=True)
    what = f'the global {refused[0]}' if refused else 'Python objects'
    return UntrustedCheckpointError(
        path, f'{what} (array {name} is an array of pickled objects, '
        'not of numbers)')


def convert_frrn_lasagne_params(arrays, arch='A', num_classes=None,
                                bn_eps=1e-5):
    """Convert the arrays of an official FRRN ``.npz`` to a state dict.

    Args:
        arrays (Sequence[np.ndarray]): ``arr_0, arr_1, ...`` in order.
        arch (str): ``'A'`` or ``'B'``.
        num_classes (int | None): Expected classes; None takes them from
            the last array (the classifier bias).
        bn_eps (float): ``eps`` of the batch norms of the target model
            (PyTorch's default 1e-5, as in the configs).

    Returns:
        tuple[OrderedDict, dict]: The state dict of an ``EncoderDecoder``
        with ``FRRN(arch)`` and ``FRRNHead`` and ``info`` (``arch``,
        ``num_classes``, ``num_arrays``, ``num_params``).

    Raises:
        ValueError: wrong number of arrays, the first array whose shape is
            not the expected one, or an ``inv_std`` that is not positive.
    """
    arrays = list(arrays)
    if num_classes is None:
        last = np.shape(arrays[-1]) if arrays else ()
        if len(last) != 1:
            raise ValueError(
                'cannot read the number of classes: the last array should '
                f'be the classifier bias (C,), got shape {last}')
        num_classes = int(last[0])
    layout = frrn_lasagne_layout(arch, num_classes)
    name = f'FRRN {arch} with {num_classes} classes'
    for i, (key, kind, shape) in enumerate(layout):
        if i >= len(arrays):
            raise ValueError(
                f'the file has {len(arrays)} arrays but {name} has '
                f'{len(layout)}: arr_{i} ({kind} of {key}, shape {shape}) '
                'and the rest are missing')
        if tuple(np.shape(arrays[i])) != shape:
            raise ValueError(
                f'arr_{i} has shape {tuple(np.shape(arrays[i]))} but {name} '
                f'expects {shape} there ({kind} of {key}); the file has '
                f'{len(arrays)} arrays, {name} has {len(layout)}')
    if len(arrays) != len(layout):
        raise ValueError(
            f'the file has {len(arrays)} arrays but {name} has '
            f'{len(layout)}: arr_{len(layout)} onwards do not belong to it')
    state_dict = OrderedDict()
    for i, ((key, kind, _), value) in enumerate(zip(layout, arrays)):
        value = np.asarray(value, dtype=np.float64)
        if kind == 'W':
            value = value[:, :, ::-1, ::-1]  # convolution -> correlation
        elif kind == 'inv_std':
            if not np.all(np.isfinite(value)) or np.any(value <= 0):
                raise ValueError(f'arr_{i} (inv_std of {key}) has values '
                                 '<= 0 or not finite')
            value = 1.0 / value**2 - bn_eps
            if np.any(value < 0):
                raise ValueError(
                    f'arr_{i} (inv_std of {key}): inv_std up to '
                    f'{np.max(arrays[i]):g} exceeds 1/sqrt(eps={bn_eps:g}); '
                    'convert with a smaller --bn-eps')
        state_dict[key] = torch.from_numpy(
            np.ascontiguousarray(value, dtype=np.float32))
        if kind == 'inv_std':
            state_dict[key[:-len('running_var')] + 'num_batches_tracked'] = \
                torch.tensor(0, dtype=torch.long)
    num_params = sum(
        int(np.prod(s)) for _, kind, s in layout
        if kind not in ('mean', 'inv_std'))
    info = dict(arch=arch, num_classes=num_classes, num_arrays=len(layout),
                num_params=num_params)
    return state_dict, info
