"""Train a segmentor: MMSeg's ``tools/train.py`` for this plugin.

Same arguments and behaviour as MMSegmentation 1.2.2's script, plus
``--resume-from CKPT`` and multi-process runs on machines without CUDA
(gloo; see :mod:`mmseg_refinenet.utils.dist`)::

    python tools/train.py CONFIG [--work-dir DIR] [--resume] [--amp] \\
        [--cfg-options KEY=VALUE ...]
    bash tools/dist_train.sh CONFIG NUM_PROCS [ARGS ...]

Works from any current directory; the work dir defaults to
``./work_dirs/<config name>`` as in MMSeg.

The checkpoint of ``load_from`` or of the resumed run is unpickled with an
allowlist of a checkpoint's types, so it cannot run code;
``--trust-checkpoint`` (or ``trust_checkpoint = True`` in the config)
unpickles a file one trusts in full.
"""
import argparse
import importlib.util
import logging
import os
import os.path as osp
import sys

from mmengine.config import DictAction

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir '
        'automatically (starts from scratch if there is none)')
    resume.add_argument(
        '--resume-from',
        metavar='CKPT',
        help='resume from this checkpoint (weights, optimizer, scheduler '
        'and iteration)')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='unpickle the checkpoint of load_from / --resume in full, which '
        'runs any code it holds: only for a file you trust (by default only '
        'the types of a checkpoint are built; also trust_checkpoint = True '
        'in the config)')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes `--local-rank` (torch >= 2.0) or
    # `--local_rank`; torchrun sets the LOCAL_RANK variable instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config!r} does not exist')
    if args.resume_from is not None and not osp.isfile(args.resume_from):
        parser.error(f'checkpoint file {args.resume_from!r} given to '
                     '--resume-from does not exist')
    if args.launcher == 'pytorch' and 'WORLD_SIZE' not in os.environ:
        parser.error('--launcher pytorch needs the variables that torchrun '
                     'sets (RANK, WORLD_SIZE, ...): start with '
                     'tools/dist_train.sh or python -m torch.distributed.run')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return parser, args


def checkpoint_to_load(cfg):
    """The local checkpoint file the run will load: ``load_from``, else on
    resume the latest checkpoint of the work dir (as MMEngine finds it);
    None if there is none."""
    from mmengine.runner import find_latest_checkpoint
    ckpt = cfg.get('load_from')
    if not ckpt and cfg.get('resume'):
        ckpt = find_latest_checkpoint(cfg.work_dir)
    if not ckpt or '://' in ckpt:
        return None
    return ckpt


def reuse_checkpoint_seed(cfg):
    """On resume without a fixed seed, take the seed of the first run.

    MMEngine draws a random seed when ``randomness.seed`` is unset and
    builds the data sampler with it before it reads the checkpoint, so a
    resumed run would see another data order. The seed is stored in the
    checkpoint's ``meta``; using it again makes the resumed run continue
    the interrupted one exactly (see AtomicCheckpointHook).
    """
    from mmseg_refinenet.utils import load_local_checkpoint
    if (cfg.get('randomness') or {}).get('seed') is not None:
        return
    ckpt = checkpoint_to_load(cfg)
    if not ckpt or not osp.isfile(ckpt):
        return  # MMEngine reports a missing file / starts from scratch
    seed = (load_local_checkpoint(ckpt, map_location='cpu').get('meta')
            or {}).get('seed')
    if seed is not None:
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=seed)


def main(argv=None):
    parser, args = parse_args(argv)

    # A checkout that is not pip-installed: make the plugin importable for
    # the config's custom_imports.
    if importlib.util.find_spec('mmseg_refinenet') is None:
        sys.path.insert(0, REPO_ROOT)
    from mmengine.config import Config
    from mmengine.device import get_device
    from mmengine.logging import print_log
    from mmengine.runner import Runner
    from mmseg.registry import RUNNERS

    from mmseg_refinenet.apis import data_error_message
    from mmseg_refinenet.utils import (UntrustedCheckpointError,
                                       config_trusts_checkpoint, destroy_dist,
                                       setup_cpu_distributed,
                                       trusted_checkpoints)

    # load config (MMEngine resolves `_base_` relative to the config file)
    cfg = Config.fromfile(osp.abspath(args.config))
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    # enable automatic-mixed-precision training
    if args.amp is True:
        if get_device() in ('cpu', 'mps'):
            parser.error('--amp needs a CUDA, NPU, MLU or MUSA device; '
                         'none is available here')
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level=logging.WARNING)
        elif optim_wrapper == 'OptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
        else:
            parser.error('--amp is only supported when the optimizer wrapper '
                         f'type is OptimWrapper, but got {optim_wrapper}')

    # resume training: MMEngine resumes from `load_from` when it is set,
    # else from the latest checkpoint in work_dir
    if args.resume_from is not None:
        cfg.resume = True
        cfg.load_from = args.resume_from
    else:
        cfg.resume = args.resume
    try:
        trust = args.trust_checkpoint or config_trusts_checkpoint(cfg)
    except ValueError as err:
        parser.error(f'{args.config}: {err}')
    trusted = [checkpoint_to_load(cfg)] if trust else []
    if cfg.resume:
        try:
            with trusted_checkpoints(*trusted):
                reuse_checkpoint_seed(cfg)
        except (RuntimeError, FileNotFoundError) as err:  # corrupt file
            parser.error(str(err))

    # several processes without CUDA: gloo, CPU DDP wrapper, no SyncBN
    setup_cpu_distributed(cfg)

    # build the runner from config
    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)

    try:
        with trusted_checkpoints(*trusted):
            runner.train()
    except UntrustedCheckpointError as err:
        sys.stderr.write(f'error: {err}\n')
        sys.exit(2)
    except Exception as err:  # noqa: B902
        # a corrupt image or broken dataset folder: one line naming the
        # file instead of a traceback from the data pipeline
        message = data_error_message(err)
        if message is None:
            raise
        sys.stderr.write(f'error: {message}\n')
        sys.exit(2)
    # tear the process group down now, not during the interpreter's exit,
    # where gloo can abort a finished run; the runner's model holds it too
    del runner
    destroy_dist()


if __name__ == '__main__':
    main()
