"""Test (and evaluate) a segmentor: MMSeg's ``tools/test.py`` for this plugin.

Same arguments and behaviour as MMSegmentation 1.2.2's script, plus
multi-process runs on machines without CUDA (gloo; see
:mod:`mmseg_refinenet.utils.dist`) and clear errors for wrong paths::

    python tools/test.py CONFIG CHECKPOINT [--out DIR] [--tta] \\
        [--show | --show-dir DIR] [--cfg-options KEY=VALUE ...]
    bash tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [ARGS ...]

The checkpoint is unpickled with an allowlist of a checkpoint's types, so it
cannot run code; ``--trust-checkpoint`` (or ``trust_checkpoint = True`` in
the config) unpickles a file one trusts in full.

Works from any current directory.
"""
import argparse
import importlib.util
import os
import os.path as osp
import shutil
import sys

from mmengine.config import DictAction

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MMSeg test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--trust-checkpoint',
        action='store_true',
        help='unpickle the checkpoint in full, which runs any code it '
        'holds: only for a file you trust (by default only the types of a '
        'checkpoint are built; also trust_checkpoint = True in the config)')
    parser.add_argument(
        '--work-dir',
        help=('if specified, the evaluation metric results will be dumped '
              'into the directory as json'))
    parser.add_argument(
        '--out',
        type=str,
        help='The directory to save output prediction for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
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
    parser.add_argument(
        '--tta',
        action='store_true',
        help='Test time augmentation (needs tta_model and tta_pipeline in '
        'the config)')
    # torch.distributed.launch passes `--local-rank` (torch >= 2.0) or
    # `--local_rank`; torchrun sets the LOCAL_RANK variable instead.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config!r} does not exist')
    # URLs (http://, s3://, ...) are left to MMEngine's checkpoint loaders
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint file {args.checkpoint!r} does not exist')
    if args.launcher == 'pytorch' and 'WORLD_SIZE' not in os.environ:
        parser.error('--launcher pytorch needs the variables that torchrun '
                     'sets (RANK, WORLD_SIZE, ...): start with '
                     'tools/dist_test.sh or python -m torch.distributed.run')
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return parser, args


def check_checkpoint(cfg, args, parser, trust):
    """Refuse a checkpoint that does not fit the config's model, or that
    holds more than a checkpoint's types (unless ``trust``).

    MMEngine's ``load_from`` only logs missing or unexpected keys, so a
    checkpoint of another model would be evaluated with random layers.
    The model is built once more here (no pretrained download) and the
    checkpoint's keys and shapes are compared before anything runs.
    """
    from mmseg_refinenet.apis import (SegmentorLoadError, build_segmentor,
                                      load_weights)
    try:
        load_weights(
            build_segmentor(cfg.copy(), args.config), args.checkpoint,
            args.config, trust)
    except SegmentorLoadError as err:
        parser.error(str(err))


def trigger_visualization_hook(cfg, args, parser):
    default_hooks = cfg.default_hooks
    if 'visualization' not in default_hooks:
        parser.error('--show/--show-dir need a visualization hook in '
                     "default_hooks, e.g. visualization=dict("
                     "type='SegVisualizationHook')")
    visualization_hook = default_hooks['visualization']
    # Turn on visualization
    visualization_hook['draw'] = True
    if args.show:
        visualization_hook['show'] = True
        visualization_hook['wait_time'] = args.wait_time
    if args.show_dir:
        visualizer = cfg.visualizer
        visualizer['save_dir'] = args.show_dir
    return cfg


def main(argv=None):
    parser, args = parse_args(argv)

    # A checkout that is not pip-installed: make the plugin importable for
    # the config's custom_imports.
    if importlib.util.find_spec('mmseg_refinenet') is None:
        sys.path.insert(0, REPO_ROOT)
    from mmengine.config import Config
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    from mmseg_refinenet.apis import data_error_message
    from mmseg_refinenet.utils import (config_trusts_checkpoint, destroy_dist,
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

    cfg.load_from = args.checkpoint
    try:
        trust = args.trust_checkpoint or config_trusts_checkpoint(cfg)
    except ValueError as err:
        parser.error(f'{args.config}: {err}')
    check_checkpoint(cfg, args, parser, trust)

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args, parser)

    if args.tta:
        missing = [k for k in ('tta_model', 'tta_pipeline') if k not in cfg]
        if missing:
            parser.error(f'--tta needs {" and ".join(missing)} in the config '
                         f'{args.config!r}')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model

    # add output_dir in metric; predictions go to a staging folder that
    # replaces --out's files only once the whole test set went through
    stage = None
    if args.out is not None:
        stage = osp.abspath(args.out.rstrip('/\\')) + '.partial'
        # what a killed earlier run left there must not be published with
        # this run's predictions. Rank 0 (by the launcher's RANK: the process
        # group does not exist yet) empties it before the runner is built;
        # the other ranks wait for it in the process group's rendezvous.
        if int(os.environ.get('RANK', '0')) == 0:
            shutil.rmtree(stage, ignore_errors=True)
        # a list of metrics (e.g. IoU + trimap): the IoU metric writes them
        metrics = cfg.test_evaluator
        if isinstance(metrics, (list, tuple)):
            metrics = [m for m in metrics if m.get('type') == 'IoUMetric']
            if not metrics:
                parser.error('--out needs an IoUMetric in test_evaluator '
                             f'(it writes the predictions) in {args.config!r}')
        else:
            metrics = [metrics]
        for metric in metrics:
            metric['output_dir'] = stage
            metric['keep_results'] = True

    # several processes without CUDA: gloo, CPU DDP wrapper, no SyncBN
    setup_cpu_distributed(cfg)

    # build the runner from config
    runner = Runner.from_cfg(cfg)

    # start testing
    try:
        with trusted_checkpoints(args.checkpoint if trust else None):
            runner.test()
    except BaseException as err:
        if stage is not None and is_main_process():
            shutil.rmtree(stage, ignore_errors=True)
        message = data_error_message(err)
        if message is None:
            raise
        sys.stderr.write(f'error: {message}\n')
        sys.exit(2)
    if stage is not None and is_main_process():
        publish(stage, args.out)
    # tear the process group down now, not during the interpreter's exit,
    # where gloo can abort a finished run; the runner's model holds it too
    del runner
    destroy_dist()


def publish(stage, out):
    """Move every file of ``stage`` into ``out`` (created if missing)."""
    os.makedirs(out, exist_ok=True)
    for root, _, files in os.walk(stage):
        target = osp.join(out, osp.relpath(root, stage))
        os.makedirs(target, exist_ok=True)
        for name in files:
            os.replace(osp.join(root, name), osp.join(target, name))
    shutil.rmtree(stage, ignore_errors=True)


if __name__ == '__main__':
    main()
