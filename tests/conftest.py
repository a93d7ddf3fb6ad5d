"""Shared test set-up.

The mmsegmentation wheel installs a top-level ``tests`` package into
site-packages. This suite therefore has no ``tests/__init__.py`` and runs in
pytest's importlib mode (pytest.ini), and shared helpers are exposed as
fixtures here instead of being imported as ``tests.xxx``.

What a test needs from outside the repository (a test dependency such as
onnxruntime, the CamVid copy) goes through :func:`_missing`: the test is
skipped when it is absent, except under ``CI=true`` (set by CI services),
where it fails and names what is missing, so that a CI run never passes
with those checks silently left out.
"""
import importlib
import importlib.util
import os
import os.path as osp
import socket
import subprocess
import sys
from collections import OrderedDict

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# the measurement code of benchmarks/ (not installed with the package),
# imported by the tests of the benchmark scripts as ``harness``
if osp.join(REPO_ROOT, 'benchmarks') not in sys.path:
    sys.path.insert(0, osp.join(REPO_ROOT, 'benchmarks'))
CAMVID_ROOT = os.environ.get(
    'CAMVID_ROOT', osp.join(REPO_ROOT, '..', 'shared', 'data', 'camvid'))

#: ``CI=true``: what a test needs must be there (see :func:`_missing`).
IN_CI = os.environ.get('CI', '').strip().lower() in ('1', 'true', 'yes')
TEST_DEPENDENCIES = 'bash tools/install.sh --tests'

# 2-core machines: keep intra-op threads at the core count.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _missing(what, fix):
    """Skip the test because ``what`` is missing, or, under ``CI=true``,
    fail it: a CI run must not pass with the test left out."""
    message = f'{what} is missing ({fix})'
    if IN_CI:
        pytest.fail(f'{message}; CI=true requires it instead of skipping',
                    pytrace=False)
    pytest.skip(message)


def _require_module(name, fix=TEST_DEPENDENCIES):
    """The module ``name``; see :func:`_missing` when it cannot be
    imported."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        reason = str(error)
    _missing(f'test dependency {name!r}', f'{fix}; {reason}')


@pytest.fixture(scope='session')
def require_module():
    """The function ``(name, fix=...) -> module`` that imports a test
    dependency, skipping the test when it is not installed (failing under
    ``CI=true``). Call it from a fixture, e.g. a module-scoped autouse one
    for a file that needs the dependency throughout."""
    return _require_module


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope='session')
def camvid_root():
    """Path of the CamVid copy (``CAMVID_ROOT``, default
    ``../shared/data/camvid``); skips the test when it is absent (fails
    under ``CI=true``)."""
    if not osp.isfile(osp.join(CAMVID_ROOT, 'train.txt')):
        _missing(f'the CamVid copy at {osp.abspath(CAMVID_ROOT)}',
                 'set CAMVID_ROOT to its folder')
    return osp.abspath(CAMVID_ROOT)


def _write_segnet_camvid(root, splits, readme=None):
    """Write a CamVid in SegNet's layout (``SPLIT.txt``, ``SPLIT/STEM.png``,
    ``SPLITannot/STEM.png``, the layout of ``../shared/data/camvid``).

    Args:
        root (Path): The folder to create.
        splits (dict): split -> list of ``(stem, image, label)``: an RGB
            uint8 HxWx3 array and a uint8 label array (0..10, 11 void).
        readme (str, optional): Text of a ``README.md``.
    """
    from PIL import Image
    for split, samples in splits.items():
        os.makedirs(root / split)
        os.makedirs(root / (split + 'annot'))
        (root / f'{split}.txt').write_text(''.join(stem + '\n'
                                                   for stem, _, _ in samples))
        for stem, image, label in samples:
            Image.fromarray(image).save(root / split / f'{stem}.png')
            Image.fromarray(label).save(root / (split + 'annot') /
                                        f'{stem}.png')
    if readme is not None:
        (root / 'README.md').write_text(readme)
    return root


@pytest.fixture(scope='session')
def write_segnet_camvid():
    """:func:`_write_segnet_camvid`: makes a SegNet-layout CamVid."""
    return _write_segnet_camvid


TINY_FRRN = """_base_ = [{base!r}]
model = dict(
    backbone=dict(arch=None, encoder=((1, 8), (1, 16)), decoder=((1, 8), ),
                  base_channels=8, residual_channels=4, num_stem_units=1),
    decode_head=dict(in_channels=8, channels=8,
                     loss_decode=dict(k=256)))
"""


@pytest.fixture(scope='session')
def tiny_frrn_config(tmp_path_factory):
    """Path of a config of a narrow two-stage FRRN A, for the benchmark
    scripts' tests (seconds per model at small sizes)."""
    path = tmp_path_factory.mktemp('configs') / 'tiny_frrn.py'
    base = osp.join(REPO_ROOT, 'configs', '_base_', 'models', 'frrn_a.py')
    path.write_text(TINY_FRRN.format(base=base))
    return str(path)


@pytest.fixture(scope='session')
def synthetic_data_root(tmp_path_factory):
    """A generated dataset in MMSeg's layout for the tests that run the
    training tools: 8 training and 4 validation images of 64x64 (seed 0)."""
    from mmseg_refinenet.datasets import generate_synthetic_dataset
    root = str(tmp_path_factory.mktemp('synthetic'))
    return generate_synthetic_dataset(
        root, num_train=8, num_val=4, size=(64, 64), seed=0)


def _short_schedule_options(data_root, max_iters, ckpt_interval,
                            val_interval=None):
    """``--cfg-options`` values (without the flag) that cut the quick-start
    config (or one based on it) down to ``max_iters`` iterations at batch
    size 2 on ``data_root``, with a checkpoint every ``ckpt_interval`` and a
    validation every ``val_interval`` (default: at the end) iterations.

    ``data_root`` of the config is substituted into the dataloaders when the
    config is loaded, so each dataloader's ``data_root`` is set explicitly.
    """
    return [
        f'train_dataloader.dataset.data_root={data_root}',
        f'val_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.data_root={data_root}',
        'train_dataloader.batch_size=2',
        f'train_cfg.max_iters={max_iters}',
        f'train_cfg.val_interval={val_interval or max_iters}',
        f'param_scheduler.0.end={max_iters}',
        f'default_hooks.checkpoint.interval={ckpt_interval}',
        'default_hooks.logger.interval=1',
    ]


@pytest.fixture(scope='session')
def short_schedule_options():
    """The function ``(data_root, max_iters, ckpt_interval,
    val_interval=None) -> list[str]`` of ``--cfg-options`` values for a
    short training run (see :func:`_short_schedule_options`)."""
    return _short_schedule_options


def _assert_one_line_error(proc, *fragments, status=2):
    """A tool's refusal: exit ``status``, no traceback, and one ``error:``
    line on stderr that names every fragment."""
    assert proc.returncode == status, proc.stderr[-3000:]
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), \
        proc.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope='session')
def assert_one_line_error():
    """:func:`_assert_one_line_error`: checks a subprocess that refused."""
    return _assert_one_line_error


def _seg_samples(n, h, w, num_classes, void_columns=0):
    """``n`` ``SegDataSample``s of ``h`` x ``w`` images with uniformly
    random labels in ``[0, num_classes)`` (torch's global generator), the
    first ``void_columns`` columns 255 (void)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(
            img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        label = torch.randint(0, num_classes, (1, h, w))
        label[:, :, :void_columns] = 255
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    return samples


@pytest.fixture(scope='session')
def seg_samples():
    """:func:`_seg_samples`: data samples with random labels, for a
    model's ``loss`` and ``predict``."""
    return _seg_samples


def _train_one_step(model, optim_wrapper_cfg, inputs, data_samples):
    """One training step of ``model`` as MMEngine's runner makes it after
    the data preprocessor: ``loss``, ``parse_losses``, backward and a step
    of the config's optimizer (``optim_wrapper_cfg``, built as the runner
    builds it, with its ``paramwise_cfg``).

    Checks that the loss is finite, that every trainable parameter
    receives a finite gradient (none is cut off from the loss), that every
    parameter with a non-zero gradient changes, and that the classifier
    does. Returns the losses (``model.loss``'s dict).
    """
    from mmengine.optim import build_optim_wrapper
    optim_wrapper = build_optim_wrapper(model, optim_wrapper_cfg)
    model.train()
    losses = model.loss(inputs, data_samples)
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss), losses
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in params.items()}
    optim_wrapper.backward(loss)
    cut_off = [n for n, p in params.items() if p.grad is None]
    assert not cut_off, f'no gradient reaches {cut_off[:5]}'
    for name, p in params.items():
        assert torch.isfinite(p.grad).all(), name
    learning = [n for n, p in params.items() if p.grad.any()]
    optim_wrapper.step()
    stuck = [n for n in learning if torch.equal(params[n], before[n])]
    assert not stuck, f'not updated despite a gradient: {stuck[:5]}'
    assert 'decode_head.conv_seg.weight' in learning
    optim_wrapper.zero_grad()
    return losses


@pytest.fixture(scope='session')
def train_one_step():
    """:func:`_train_one_step`: a real training step of a config's model
    with the config's optimizer, and its checks."""
    return _train_one_step


def _load_script(path):
    """The module of the script at ``path`` (``tools/`` and ``benchmarks/``
    are no packages), loaded by path: its top level runs, its
    ``if __name__ == '__main__'`` block does not."""
    name = osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='session')
def load_script():
    """The function ``(path) -> module`` loading a script of ``tools/`` or
    ``benchmarks/`` without running its ``main``, for tests of its
    functions."""
    return _load_script


@pytest.fixture
def run_script_main(capsys, monkeypatch):
    """The function ``(script, *args, cwd=None) -> CompletedProcess`` that
    runs ``main([str(a) for a in args])`` of the script at ``script`` in
    this process, for the tests of wrong arguments: a subprocess would
    import torch and MMSeg again (seconds per case).

    The result reads like ``subprocess.run(..., capture_output=True,
    text=True)``: ``returncode`` is the code of a ``SystemExit`` (``None``:
    0; a message: printed, 1) or else the value ``main`` returned (as for
    ``sys.exit(main())``; ``None``: 0), ``stdout`` and ``stderr`` what was
    written to them (``capsys``). Any other exception propagates and fails
    the test where the script would print a traceback. ``sys.argv`` is
    ``[script, *args]`` during the run (argparse's ``prog``) and the
    script's folder is first on ``sys.path``, as when Python runs it; the
    working folder (``cwd``), ``sys.path``, ``os.environ``, MMEngine's
    default scope and torch's thread count are restored afterwards. MMEngine's
    loggers are new for the run, as in a new process: one made earlier
    writes to the stream that was ``sys.stdout`` then (perhaps another
    test's closed ``capsys`` buffer). Keep one case per script as a real
    subprocess: that one tests the ``if __name__ == '__main__'`` entry.
    """
    from mmengine.logging import MMLogger
    from mmengine.registry import DefaultScope

    def run(script, *args, cwd=None):
        argv = [str(a) for a in args]
        environ = dict(os.environ)
        threads = torch.get_num_threads()
        with monkeypatch.context() as patch:
            if cwd is not None:
                patch.chdir(cwd)
            patch.setattr(sys, 'argv', [script, *argv])
            # as ``python script.py``: the script's folder first
            patch.setattr(sys, 'path',
                          [osp.dirname(osp.abspath(script)), *sys.path])
            patch.setattr(DefaultScope, '_instance_dict',
                          DefaultScope._instance_dict.copy())
            patch.setattr(MMLogger, '_instance_dict', OrderedDict())
            capsys.readouterr()
            try:
                status = _load_script(script).main(argv)
            except SystemExit as exit_:
                status = exit_.code
            finally:
                if torch.get_num_threads() != threads:
                    torch.set_num_threads(threads)
                for key in set(os.environ) - set(environ):
                    del os.environ[key]
                os.environ.update(environ)
            if status is not None and not isinstance(status, int):
                print(status, file=sys.stderr)
                status = 1
            out, err = capsys.readouterr()
        return subprocess.CompletedProcess([script, *argv], status or 0, out,
                                           err)

    return run


@pytest.fixture
def render_page(run_script_main, tmp_path):
    """The function ``(*result_files) -> text`` of the page that
    ``benchmarks/render.py`` makes of those result files (in this
    process, in a folder of the test's own)."""
    render = osp.join(REPO_ROOT, 'benchmarks', 'render.py')

    def run(*paths):
        page = tmp_path / 'rendered' / 'benchmarks.md'
        proc = run_script_main(render, *paths, '--out', page)
        assert proc.returncode == 0, proc.stderr
        return page.read_text()

    return run


def _head_commit():
    """The commit that the results of this tree must record, found with
    ``git rev-parse HEAD`` (not the harness's own reading of ``.git``); a
    copy without ``.git`` records ``$MMSEG_RN_COMMIT`` or None."""
    if not osp.exists(osp.join(REPO_ROOT, '.git')):
        return os.environ.get('MMSEG_RN_COMMIT') or None
    try:
        proc = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=60)
    except OSError as error:
        _missing('git', f'a .git folder but no git program: {error}')
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope='session')
def head_commit():
    """:func:`_head_commit`: the checked-out commit, by ``git rev-parse``
    (a 40-digit hash in a git checkout, worktrees included)."""
    return _head_commit()


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='session')
def free_port():
    """The function ``() -> int`` that returns a free local TCP port (for
    the ``PORT`` of ``tools/dist_*.sh``)."""
    return _free_port
