"""Checkpoint loading that never runs code from the file.

A checkpoint is a pickle, and unpickling a pickle in full can run any code
it holds. :func:`load_local_checkpoint` reads local checkpoint files with a
restricted unpickler that builds only the types an MMEngine checkpoint of
this project holds (see :func:`checkpoint_globals`): tensors and their
storages, ``collections.OrderedDict`` / ``Counter``, numpy arrays, scalars
and dtypes (the ``meta``, the message hub and the random generator states),
MMEngine's ``HistoryBuffer`` (the message hub's logged scalars) and the
builtins. Any other global (a function such as ``os.system``, a class of
another package) is refused before anything of the file is run, with an
:class:`UntrustedCheckpointError` that names the file, the refused global
and how to trust the file.

* torch >= 2.6: torch's own weights-only unpickler
  (``torch.load(weights_only=True)``) with the allowlist added through
  ``torch.serialization.safe_globals`` for the duration of the load only;
  the process's global allowlist is left as it was.
* older torch (2.1 to 2.5): ``torch.load`` with a ``pickle_module`` whose
  ``Unpickler.find_class`` resolves the same allowlist and refuses the rest,
  so loading is as safe there.

A file one knows and trusts is loaded with the full unpickler inside
:func:`trusted_checkpoints`; the tools do so for ``--trust-checkpoint`` or
``trust_checkpoint = True`` in the config.

MMEngine 0.10.7 calls ``torch.load(filename, map_location=...)``: under
torch >= 2.6 that fails for every full MMEngine checkpoint (numpy objects,
message hub), under older torch it unpickles in full.
:func:`register_checkpoint_loader`, called when ``mmseg_refinenet`` is
imported (which every config of this project does through
``custom_imports``), makes :func:`load_local_checkpoint` MMEngine's loader
for local paths (the ``''`` scheme of
:class:`mmengine.runner.CheckpointLoader`): ``load_from``, ``--resume``,
``init_cfg=dict(type='Pretrained', ...)`` and ``mmseg.apis.init_model``
then load through it, for every MMSeg model of the process.

Checking that a checkpoint's weights fit a model is
:mod:`mmseg_refinenet.utils.strict_loading`.
"""
import _compat_pickle
import collections
import contextlib
import errno
import functools
import os.path as osp
import pickle
import pickletools
import re
import zipfile
from _codecs import encode

import torch
from mmengine.runner.checkpoint import CheckpointLoader
from mmengine.utils import digit_version

TRUST_HINT = ('If you trust this file, load it with --trust-checkpoint '
              '(tools/*.py), trust_checkpoint = True in the config, or in '
              'Python inside mmseg_refinenet.utils.trusted_checkpoints(path); '
              'that unpickles it in full, which runs any code it holds.')

# torch.load(weights_only=True) with extra globals given as (object, name)
_TORCH_WEIGHTS_ONLY_ALLOWLIST = (
    digit_version(torch.__version__) >= digit_version('2.6.0')
    and hasattr(torch.serialization, 'safe_globals'))

# the statistics methods that MMEngine's HistoryBuffer pickles with each
# buffer (as getattr(HistoryBuffer, name))
_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')

# module.name as a pickle's GLOBAL instruction spells it
_GLOBAL_NAME = re.compile(r'^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$')

# the paths trusted by the active trusted_checkpoints() blocks
_trusted_paths = []


class UntrustedCheckpointError(RuntimeError):
    """A checkpoint file needs more than an MMEngine checkpoint's types.

    Raised by :func:`load_local_checkpoint` before anything of the file
    is run. The message names the file, what was refused and how to trust
    the file.

    Attributes:
        filename (str): The file.
        refused (str): What was refused, e.g. ``'the global
            posix.system'``.
    """

    def __init__(self, filename, refused):
        self.filename = filename
        self.refused = refused
        super().__init__(
            f'checkpoint file {filename!r} was refused before anything of it '
            f'ran: it needs {refused}, while a checkpoint holds only '
            "tensors, numpy arrays and scalars and MMEngine's message hub. "
            f'{TRUST_HINT}')


class _Refused(Exception):
    """Raised inside the unpickler; becomes an UntrustedCheckpointError."""

    def __init__(self, what):
        super().__init__(what)
        self.what = what


def _checkpoint_getattr(obj, name):
    """``getattr`` as the message hub's pickle uses it: only the default
    statistics methods of MMEngine's ``HistoryBuffer``."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS:
        return getattr(obj, name)
    owner = getattr(obj, '__qualname__', type(obj).__name__)
    raise _Refused(f'the global builtins.getattr for getattr({owner}, '
                   f'{name!r})')


@functools.lru_cache(maxsize=None)
def checkpoint_globals():
    """The globals a checkpoint may hold beyond torch's own weights-only
    allowlist (tensors, storages, ``OrderedDict``), as ``(object, name)``
    pairs: ``name`` is how the pickle refers to ``object``.

    Found in the checkpoints that MMEngine 0.10.7 writes for this project
    (``AtomicCheckpointHook``, AdamW/SGD, the configs' schedulers, with
    numpy 1 and 2): numpy arrays (message hub buffers, numpy's random
    state), scalars (``eta``, ``best_score``) and dtypes, the message hub's
    ``HistoryBuffer`` and the ``getattr`` that pickles its statistics
    methods (limited to those), ``collections.Counter`` (``MultiStepLR``'s
    milestones) and ``_codecs.encode`` (bytes). Optimizer, scheduler,
    ``GradScaler`` and random generator states are otherwise plain
    tensors, numbers, strings, lists and dicts.

    Returns:
        tuple[tuple[object, str], ...]
    """
    import numpy as np
    from mmengine.logging import HistoryBuffer
    reconstruct = np.zeros(0).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    pairs = [
        (collections.OrderedDict, 'collections.OrderedDict'),
        (collections.Counter, 'collections.Counter'),
        (encode, '_codecs.encode'),
        (np.ndarray, 'numpy.ndarray'),
        (np.dtype, 'numpy.dtype'),
        (HistoryBuffer, 'mmengine.logging.history_buffer.HistoryBuffer'),
        (_checkpoint_getattr, 'builtins.getattr'),
    ]
    # numpy 2 moved numpy.core to numpy._core: accept both spellings
    for core in ('core', '_core'):
        pairs.append((reconstruct, f'numpy.{core}.multiarray._reconstruct'))
        pairs.append((scalar, f'numpy.{core}.multiarray.scalar'))
    # numpy >= 1.20 gives each dtype a class of its own (e.g.
    # numpy.dtypes.Float64DType), which the weights-only unpickler checks
    # before it restores a dtype's state
    for code in '?' + np.typecodes['AllInteger'] + np.typecodes['AllFloat']:
        cls = type(np.dtype(code))
        if cls is not np.dtype:
            pairs.append((cls, f'{cls.__module__}.{cls.__qualname__}'))
    return tuple(pairs)


def globals_in_pickle(data, refused_only=False):
    """The globals (``'module.name'``) that a pickle refers to, in order,
    read from its instructions without unpickling anything.

    Args:
        data (bytes): The pickle.
        refused_only (bool): Only those outside the checkpoint allowlist
            (:func:`checkpoint_globals` and torch's weights-only defaults).

    Returns:
        list[str]: Each global once; those of a cut or damaged pickle up
        to where it becomes unreadable.
    """
    found, strings, memo = [], [], {}
    pushed = None  # the string the previous instruction pushed, if any
    try:
        for opcode, arg, _ in pickletools.genops(data):
            name, string = opcode.name, None
            if name == 'GLOBAL':
                module, _, attr = arg.partition(' ')
                found.append(_modern_name(module, attr))
            elif name == 'STACK_GLOBAL' and len(strings) >= 2:
                found.append(f'{strings[-2]}.{strings[-1]}')
            elif 'UNICODE' in name or name.endswith('GET'):
                string = arg if 'UNICODE' in name else memo.get(arg)
                if isinstance(string, str):
                    strings.append(string)
            elif name == 'MEMOIZE':
                memo[len(memo)] = pushed
            elif name.endswith('PUT'):
                memo[arg] = pushed
            if name not in ('MEMOIZE', 'PUT', 'BINPUT', 'LONG_BINPUT'):
                pushed = string
    except (ValueError, EOFError):
        pass
    if refused_only:
        found = [name for name in found if name not in _allowed_by_name()]
    return list(dict.fromkeys(found))


def _modern_name(module, name):
    """``'module.name'``, with the Python 2 names that pickle protocols 0
    to 2 write (``__builtin__``) mapped as pickle maps them."""
    module, name = _compat_pickle.NAME_MAPPING.get((module, name),
                                                   (module, name))
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f'{module}.{name}'


class _RestrictedUnpickler(pickle._Unpickler):
    """Python's unpickler with the checks of torch's weights-only one.

    Globals resolve only from the allowlist (torch's weights-only defaults
    and :func:`checkpoint_globals`), and only allowlisted functions and
    classes are called, instantiated or given a state: an object that an
    allowlisted call returned is never called in turn.
    """
    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module, name):
        allowed = _allowed_by_name()
        full_name = _modern_name(module, name)
        if full_name in allowed:
            return allowed[full_name]
        if not _GLOBAL_NAME.match(full_name):  # a pickle cut in the name
            raise pickle.UnpicklingError(
                f'damaged GLOBAL instruction {full_name!r}')
        raise _Refused(f'the global {full_name}')

    def load_reduce(self):
        _check_allowed(self.stack[-2], 'a call of')
        super().load_reduce()

    def load_newobj(self):
        _check_allowed(self.stack[-2], 'an instance of')
        super().load_newobj()

    def load_newobj_ex(self):
        _check_allowed(self.stack[-3], 'an instance of')
        super().load_newobj_ex()

    def _instantiate(self, klass, args):
        _check_allowed(klass, 'an instance of')
        super()._instantiate(klass, args)

    def load_build(self):
        _check_allowed(type(self.stack[-2]), 'the state of a')
        super().load_build()

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build


def _check_allowed(obj, what):
    """Refuse ``obj`` unless it is one of the allowlisted globals."""
    if id(obj) not in _allowed_ids():
        name = getattr(obj, '__qualname__', type(obj).__name__)
        raise _Refused(f'{what} {name}, which is not allowed')


@functools.lru_cache(maxsize=None)
def _allowed_by_name():
    from torch._weights_only_unpickler import _get_allowed_globals
    allowed = dict(_get_allowed_globals())
    allowed.update((name, obj) for obj, name in checkpoint_globals())
    return allowed


@functools.lru_cache(maxsize=None)
def _allowed_ids():
    return frozenset(map(id, _allowed_by_name().values()))


class _RestrictedPickle:
    """The ``pickle_module`` given to ``torch.load`` on torch < 2.6."""
    __name__ = 'mmseg_refinenet_restricted_pickle'
    Unpickler = _RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        try:
            return _RestrictedUnpickler(file, **kwargs).load()
        except KeyError as err:
            # Python's unpickler looks each instruction byte up in its
            # dispatch table: a byte that is none (a file that is no
            # pickle) is a KeyError there, an UnpicklingError in C pickle
            byte = err.args[0] if err.args else None
            if isinstance(byte, int) and chr(byte) not in pickletools.code2op:
                raise pickle.UnpicklingError(
                    f'invalid load key, {chr(byte)!r}') from None
            raise


def _weights_only_refusal(err):
    """What torch's weights-only unpickler refused, from its error: a
    string, ``_RETRY`` for a pickle instruction it does not support (e.g.
    of protocol 4), or None where the error rather shows a damaged file
    (e.g. a cut pickle)."""
    text = str(err)
    if 'Weights only load failed' not in text:
        return None
    found = re.search(r'GLOBAL (\S+)', text)
    if found:
        name = found.group(1)
        if re.match(r'^[A-Za-z_]\w*$', name):
            name = f'builtins.{name}'  # torch drops the module of builtins
        # a pickle cut inside the instruction leaves no valid name
        return f'the global {name}' if _GLOBAL_NAME.match(name) else None
    found = re.search(r'Unsupported operand (\d+)', text)
    if found:
        # a byte that is no pickle instruction shows a damaged file
        is_opcode = chr(int(found.group(1))) in pickletools.code2op
        return _RETRY if is_opcode else None
    found = re.search(r'WeightsUnpickler error:\s*((Trying to call reduce|'
                      r'Can only build|Can only create)[^\n]*)', text)
    if found:
        return ("an object that torch's weights-only unpickler does not "
                f'build ({found.group(1)})')
    return None


# _weights_only_refusal: load with the restricted unpickler instead
_RETRY = object()


def _load_restricted(filename, map_location):
    """``torch.load`` that builds the allowlisted types only."""
    if _TORCH_WEIGHTS_ONLY_ALLOWLIST:
        from torch.serialization import get_safe_globals, safe_globals

        # added for this load only; leaving the block removes them again,
        # so those the process registered itself are not added (nor removed)
        registered = set(get_safe_globals())
        extra = [g for g in checkpoint_globals() if g not in registered]
        try:
            with safe_globals(extra):
                return torch.load(filename, map_location=map_location,
                                  weights_only=True)
        except pickle.UnpicklingError as err:
            refused = _weights_only_refusal(err)
            if refused is None:
                raise
            if refused is not _RETRY:
                raise _Refused(refused) from None
    # torch < 2.6, or a pickle instruction that torch's weights-only
    # unpickler does not support: the same allowlist through find_class
    return torch.load(filename, map_location=map_location,
                      pickle_module=_RestrictedPickle, weights_only=False)


@contextlib.contextmanager
def trusted_checkpoints(*paths):
    """Load the checkpoint files ``paths`` with the full unpickler.

    Within the block, :func:`load_local_checkpoint` (and so MMEngine's
    ``load_from``, ``--resume``, ``load_checkpoint``) unpickles these files
    in full, as ``torch.load(weights_only=False)``: any code they hold
    runs. For files one made or got from a source one trusts, which hold
    objects beyond those of :func:`checkpoint_globals`. Other files are
    still loaded safely.

    Args:
        *paths (str): Checkpoint files; ``None`` and ``''`` are ignored.

    Example:
        >>> with trusted_checkpoints('work_dirs/old/iter_4000.pth'):
        ...     model = init_model(config, 'work_dirs/old/iter_4000.pth')
    """
    added = [_real_path(p) for p in paths if p]
    _trusted_paths.extend(added)
    try:
        yield
    finally:
        for path in added:
            _trusted_paths.remove(path)


def config_trusts_checkpoint(cfg):
    """The config's ``trust_checkpoint`` (top level; default False).

    ``trust_checkpoint = True`` in a config makes this project's tools
    load the checkpoint of the run (``load_from``, the resumed checkpoint,
    the checkpoint given to ``tools/test.py`` etc.) with the full
    unpickler, as ``--trust-checkpoint`` does.

    Raises:
        ValueError: the value is not a bool.
    """
    value = cfg.get('trust_checkpoint', False)
    if not isinstance(value, bool):
        raise ValueError(
            f'trust_checkpoint in the config must be True or False, got '
            f'{value!r}')
    return value


def _real_path(path):
    return osp.realpath(osp.expanduser(str(path)))


def is_trusted_checkpoint(filename):
    """Whether ``filename`` is trusted by an active
    :func:`trusted_checkpoints` block."""
    return _real_path(filename) in _trusted_paths


def load_local_checkpoint(filename, map_location=None):
    """Load a checkpoint from a local path without running code from it.

    The file is unpickled with the allowlist of :func:`checkpoint_globals`
    (see the module documentation), or in full where
    :func:`trusted_checkpoints` trusts it.

    Args:
        filename (str): Path of the checkpoint file.
        map_location (str | torch.device | None): As in :func:`torch.load`.

    Returns:
        dict | OrderedDict: The loaded object.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        UntrustedCheckpointError: the file needs a global outside the
            allowlist (and is not trusted); nothing of it was run.
        RuntimeError: the file exists but could not be loaded. Where the
            error shows a damaged file (truncated, corrupt, or another
            format) the message says to delete it; for any other error
            (e.g. a GPU checkpoint loaded without ``map_location`` on a
            machine without one) it names the file and the error only.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(
            f'checkpoint file {filename!r} does not exist; check the path '
            'given to load_from / --resume / init_cfg.checkpoint')
    try:
        if is_trusted_checkpoint(filename):
            return torch.load(
                filename, map_location=map_location, weights_only=False)
        return _load_restricted(filename, map_location)
    except _Refused as err:
        raise UntrustedCheckpointError(filename, err.what) from None
    except (RuntimeError, EOFError, pickle.UnpicklingError,
            zipfile.BadZipFile, ValueError, OSError) as err:
        if not _is_damaged_file_error(err):
            if isinstance(err, OSError):
                raise  # e.g. permissions: the error names the file already
            raise RuntimeError(
                f'checkpoint file {filename!r} could not be loaded: '
                f'{err}') from err
        raise RuntimeError(
            f'checkpoint file {filename!r} could not be read '
            f'({_short_reason(err)}). It is '
            'truncated, corrupt or not a torch checkpoint: delete it and '
            'resume from an earlier one (--resume-from WORK_DIR/iter_N.pth; '
            'work_dir/last_checkpoint names the newest), or point load_from '
            'at a valid file.') from err


def _short_reason(err):
    """``err`` on one line; of a weights-only load's long message, the
    unpickler's own error."""
    text = str(err)
    found = re.search(r'WeightsUnpickler error:\s*([^\n]+)', text)
    if found:
        text = found.group(1).split('. Please use')[0]
    return ' '.join(text.split())


def _is_damaged_file_error(err):
    """Whether ``torch.load``'s error ``err`` shows a damaged file (what
    torch 2.x raises for truncated, corrupt or foreign files), rather than
    a readable checkpoint that failed to load."""
    if isinstance(err, (EOFError, pickle.UnpicklingError, zipfile.BadZipFile)):
        return True
    if isinstance(err, OSError):
        # a zip checkpoint cut inside a record: the reader seeks past the end
        return err.errno == errno.EINVAL
    if isinstance(err, RuntimeError):
        text = str(err)
        return any(sign in text for sign in (
            'PytorchStreamReader', 'unexpected EOF', 'might be corrupted'))
    return False


def register_checkpoint_loader():
    """Make :func:`load_local_checkpoint` MMEngine's loader for local files.

    Idempotent; called when ``mmseg_refinenet`` is imported.
    """
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_local_checkpoint, force=True)
