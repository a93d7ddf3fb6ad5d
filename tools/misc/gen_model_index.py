"""Write ``model-index.yml`` and ``configs/*/metafile.yaml`` in MMSeg's format.

The metafiles are what ``mim search mmseg_refinenet`` lists. They are
generated from the configs themselves (dataset, batch size, crop size,
schedule, backbone, method) and from the config folders' README tables
(the "paper" column, where it starts with a number), so they cannot drift
from the configs::

    python tools/misc/gen_model_index.py          # (re)write the files
    python tools/misc/gen_model_index.py --check  # exit 1 if out of date

Every config of ``configs/refinenet``, ``configs/frrn`` and
``configs/camvid`` gets one entry; ``configs/quickstart`` (a demo, not a
benchmark) gets none. ``Results`` holds the paper's number only, under the
metric name ``mIoU (paper)``: no trained checkpoint of this plugin is
published yet, so there is no ``Weights`` field either.
"""
import argparse
import glob
import os
import os.path as osp
import re
import sys
import tempfile

import yaml

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FOLDERS = ('refinenet', 'frrn', 'camvid')

PAPERS = {
    'RefineNet': ('RefineNet: Multi-Path Refinement Networks for '
                  'High-Resolution Semantic Segmentation',
                  'https://arxiv.org/abs/1611.06612'),
    'Light-Weight RefineNet': ('Light-Weight RefineNet for Real-Time '
                               'Semantic Segmentation',
                               'https://arxiv.org/abs/1810.03272'),
    'FRRN': ('Full-Resolution Residual Networks for Semantic Segmentation '
             'in Street Scenes', 'https://arxiv.org/abs/1611.08323'),
    'FCN': ('Fully Convolutional Networks for Semantic Segmentation',
            'https://arxiv.org/abs/1411.4038'),
    'DeepLabV3': ('Rethinking atrous convolution for semantic image '
                  'segmentation', 'https://arxiv.org/abs/1706.05587'),
    'UNet': ('U-Net: Convolutional Networks for Biomedical Image '
             'Segmentation', 'https://arxiv.org/abs/1505.04597'),
}
CODE = {
    'RefineNet': 'mmseg_refinenet/models/decode_heads/refinenet_head.py',
    'Light-Weight RefineNet':
    'mmseg_refinenet/models/decode_heads/refinenet_head.py',
    'FRRN': 'mmseg_refinenet/models/backbones/frrn.py',
}
DATASETS = {
    'PascalVOCDataset': 'Pascal VOC 2012 + Aug',
    'CityscapesDataset': 'Cityscapes',
    'PascalContextDataset': 'Pascal Context',
    'ADE20KDataset': 'ADE20K',
    'NYUDv2Dataset': 'NYUDv2',
    'SUNRGBDDataset': 'SUN RGB-D',
    'PascalPersonPartDataset': 'PASCAL-Person-Part',
    'CamVidDataset': 'CamVid',
}
NAME = re.compile(r'^(?P<method>[^_]+)(_(?P<backbone>[^_]+))?_'
                  r'(?P<gpus>\d+)xb(?P<batch>\d+)-(?P<schedule>\w+?)_'
                  r'(?P<dataset>[^_]+)-(?P<crop>\d+x\d+)(_\w+)?$')


def collection_of(stem):
    """The collection (algorithm) a config belongs to, from its name."""
    method = stem.split('_')[0]
    if method.startswith('lw-refinenet'):
        return 'Light-Weight RefineNet'
    for prefix, name in (('refinenet', 'RefineNet'), ('frrn', 'FRRN'),
                         ('fcn', 'FCN'), ('deeplabv3', 'DeepLabV3'),
                         ('unet', 'UNet')):
        if method.startswith(prefix):
            return name
    raise ValueError(f'config {stem!r}: cannot tell its algorithm from the '
                     'name; add its prefix to collection_of()')


def backbone_label(stem, cfg):
    """``R-101``, ``R-50-D8``, ``UNet-S5-D16``, ``FRRN A`` ..."""
    backbone = cfg.model.backbone
    if backbone.type == 'FRRN':
        return f"FRRN {backbone.get('arch', 'A')}"
    if backbone.type == 'FRRNResNetBaseline':
        return 'ResNet enc./dec. (FRRN A widths)'
    if backbone.type == 'UNet':  # unet-s5-d16_fcn_...: the head is FCN
        return 'UNet-' + stem.split('_')[0][len('unet-'):].upper()
    if backbone.type == 'MultiScaleBackbone':
        return f"2x R-{backbone.backbone.depth}"
    token = NAME.match(stem)['backbone'] if NAME.match(stem) else None
    token = (token or '').replace('-released', '')
    m = re.fullmatch(r'r(\d+)(-d\d+)?', token)
    if m:
        return f'R-{m[1]}' + (m[2] or '').upper()
    if token == 'mobilenet-v2':  # MMSeg's label
        return 'M-V2'
    return token.upper() if token else backbone.type


def paper_numbers(folder):
    """``{config file name: mIoU}`` from the README's "paper" column."""
    readme = osp.join(REPO, 'configs', folder, 'README.md')
    if not osp.isfile(readme):
        return {}
    numbers, column = {}, None
    with open(readme, encoding='utf-8') as f:
        for line in f:
            if not line.startswith('|'):
                column = None
                continue
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            if column is None:
                lowered = [c.lower() for c in cells]
                column = lowered.index('paper') if 'paper' in lowered else -1
                continue
            if column < 0 or column >= len(cells):
                continue
            value = re.match(r'(\d+(\.\d+)?)\b', cells[column])
            if not value:
                continue
            for name in re.findall(r'\]\(([^)]+\.py)\)', line):
                numbers[osp.basename(name)] = float(value[1])
    return numbers


def model_entry(path, cfg, paper):
    stem = osp.splitext(osp.basename(path))[0]
    collection = collection_of(stem)
    dataset = DATASETS.get(cfg.get('dataset_type'), cfg.get('dataset_type'))
    loader = cfg.train_dataloader
    m = NAME.match(stem)
    gpus = int(m['gpus']) if m else 1
    metadata = {
        'Training Data': dataset,
        'Batch Size': gpus * int(loader.batch_size),
        'Architecture': [backbone_label(stem, cfg), collection],
        'Training Resources': f'{gpus}x GPUs',
        'Iterations': int(cfg.train_cfg.max_iters),
    }
    if m:
        metadata['Crop Size'] = m['crop']
    if cfg.get('load_from'):
        metadata['Initialised From'] = cfg.load_from
    entry = {
        'Name': stem,
        'In Collection': collection,
        'Config': osp.relpath(path, REPO).replace(os.sep, '/'),
        'Metadata': metadata,
    }
    number = paper.get(osp.basename(path))
    if number is not None:
        entry['Results'] = [{
            'Task': 'Semantic Segmentation',
            'Dataset': dataset,
            'Metrics': {
                'mIoU (paper)': number
            }
        }]
    title, url = PAPERS[collection]
    entry['Paper'] = {'Title': title, 'URL': url}
    if collection in CODE:
        entry['Code'] = CODE[collection]
    entry['Framework'] = 'PyTorch'
    return entry


def build_metafile(folder):
    from mmengine.config import Config
    paths = sorted(glob.glob(osp.join(REPO, 'configs', folder, '*.py')))
    paper = paper_numbers(folder)
    models, collections = [], {}
    for path in paths:
        cfg = Config.fromfile(path)
        entry = model_entry(path, cfg, paper)
        models.append(entry)
        data = collections.setdefault(entry['In Collection'], set())
        data.add(entry['Metadata']['Training Data'])
    return {
        'Collections': [{
            'Name': name,
            'License': 'Apache License 2.0',
            'Metadata': {
                'Training Data': sorted(data)
            },
            'Paper': {
                'Title': PAPERS[name][0],
                'URL': PAPERS[name][1]
            },
            'README': f'configs/{folder}/README.md',
            'Frameworks': ['PyTorch'],
        } for name, data in sorted(collections.items())],
        'Models': models,
    }


def render(data):
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True,
                          width=79)


def expected_files():
    files = {}
    for folder in FOLDERS:
        files[f'configs/{folder}/metafile.yaml'] = render(
            build_metafile(folder))
    files['model-index.yml'] = render(
        {'Import': [f'configs/{folder}/metafile.yaml' for folder in FOLDERS]})
    return files


def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=osp.dirname(path), suffix='.tmp')
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--check',
        action='store_true',
        help='write nothing; exit 1 if a file is missing or out of date')
    args = parser.parse_args(argv)
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    stale = []
    for rel, text in expected_files().items():
        path = osp.join(REPO, rel)
        current = None
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                current = f.read()
        if current == text:
            continue
        stale.append(rel)
        if not args.check:
            write_atomic(path, text)
            print(f'wrote {rel}')
    if args.check and stale:
        sys.stderr.write('error: out of date: ' + ', '.join(stale) +
                         '; run python tools/misc/gen_model_index.py\n')
        return 1
    if not stale:
        print('model-index.yml and metafiles are up to date')
    return 0


if __name__ == '__main__':
    sys.exit(main())
