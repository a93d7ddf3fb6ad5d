"""Quick start: train and evaluate a small RefineNet on generated data.

Generates a small segmentation dataset in MMSeg's layout, trains the 4-cascaded
RefineNet on a ResNet-18 from scratch with MMSeg's Runner on the CPU
(``configs/quickstart/refinenet_r18_1xb8-300it_synthetic-64x64.py``),
evaluates mIoU on the validation split and draws predictions next to the
ground truth. Takes a few minutes on 2 cores::

    python tools/quickstart.py [--work-dir outputs/quickstart] [--iters 300]
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'quickstart',
                  'refinenet_r18_1xb8-300it_synthetic-64x64.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--work-dir',
        default=osp.join(REPO, 'outputs', 'quickstart'),
        help='where the data, checkpoints, logs and pictures go')
    parser.add_argument(
        '--iters', type=int, default=300, help='training iterations')
    parser.add_argument(
        '--num-train', type=int, default=96, help='generated train images')
    parser.add_argument(
        '--num-val', type=int, default=24, help='generated val images')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    if args.iters < 1 or args.num_train < 1 or args.num_val < 1:
        parser.error('--iters, --num-train and --num-val must be positive')
    return args


def build_config(args, data_root):
    from mmengine.config import Config
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = osp.join(args.work_dir, 'run')
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        loader.dataset.data_root = data_root
    cfg.train_cfg.max_iters = args.iters
    cfg.train_cfg.val_interval = args.iters
    cfg.param_scheduler[0].end = args.iters
    cfg.default_hooks.checkpoint.interval = args.iters
    cfg.randomness = dict(seed=args.seed)
    return cfg


def draw_predictions(model, cfg, data_root, out_file, count=6):
    """Save a picture: image | ground truth | prediction, one row each."""
    import cv2
    import numpy as np
    from mmseg.apis import inference_model

    model.cfg = cfg  # mmseg.apis.inference_model reads the test pipeline
    palette = np.array(cfg.metainfo.palette, dtype=np.uint8)[:, ::-1]  # BGR
    img_dir = osp.join(data_root, 'img_dir', 'val')
    names = sorted(os.listdir(img_dir))[:count]
    rows = []
    for name in names:
        image = cv2.imread(osp.join(img_dir, name))
        gt = cv2.imread(
            osp.join(data_root, 'ann_dir', 'val', name), cv2.IMREAD_GRAYSCALE)
        pred = inference_model(model, image).pred_sem_seg.data[0].cpu().numpy()
        row = np.hstack([image, palette[gt], palette[pred]])
        rows.append(
            cv2.resize(
                row, None, fx=4, fy=4, interpolation=cv2.INTER_NEAREST))
    header = np.full((28, rows[0].shape[1], 3), 255, np.uint8)
    width = rows[0].shape[1] // 3
    for i, title in enumerate(('image', 'ground truth', 'RefineNet')):
        cv2.putText(header, title, (i * width + 8, 20),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    cv2.imwrite(out_file, np.vstack([header] + rows))


def main():
    args = parse_args()
    start = time.time()
    import torch
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    from mmengine.runner import Runner

    import mmseg_refinenet  # noqa: F401
    from mmseg_refinenet.datasets import generate_synthetic_dataset

    os.makedirs(args.work_dir, exist_ok=True)
    data_root = osp.join(args.work_dir, 'data')
    print(f'[quickstart] generating {args.num_train}+{args.num_val} images '
          f'under {data_root}')
    generate_synthetic_dataset(
        data_root, args.num_train, args.num_val, size=(64, 64),
        seed=args.seed)

    cfg = build_config(args, data_root)
    print(f'[quickstart] training RefineNet-R18 for {args.iters} iterations '
          'on the CPU (config: '
          f'{osp.relpath(CONFIG, os.getcwd())})')
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    picture = osp.join(args.work_dir, 'predictions.png')
    draw_predictions(runner.model, cfg, data_root, picture)

    summary = dict(
        mIoU=float(metrics['mIoU']),
        aAcc=float(metrics['aAcc']),
        mAcc=float(metrics['mAcc']),
        iterations=args.iters,
        seconds=round(time.time() - start, 1),
        checkpoint=osp.join(cfg.work_dir, f'iter_{args.iters}.pth'),
        predictions=picture,
        log_dir=runner.log_dir)
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print('\n[quickstart] done in {seconds} s: val mIoU {mIoU:.2f}, '
          'aAcc {aAcc:.2f}, mAcc {mAcc:.2f}'.format(**summary))
    print(f'[quickstart] predictions: {picture}')
    print(f'[quickstart] checkpoint:  {summary["checkpoint"]}')
    print(f'[quickstart] logs:        {runner.log_dir}')
    print('[quickstart] summary:     '
          f'{osp.join(args.work_dir, "summary.json")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
