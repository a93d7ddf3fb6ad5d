"""Model converters: published RefineNet / Light-Weight RefineNet and
Lasagne FRRN weights -> this plugin, checked by logits and round trips.

A reference RefineNet with the published key names and forward pass is
written here (with random weights), converted, loaded into our
EncoderDecoder, and must give the same logits.
"""
import importlib.util
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm

from mmseg.registry import MODELS
from mmseg.utils import register_all_modules

import mmseg_refinenet  # noqa: F401
from mmseg_refinenet.converters import (convert_frrn_lasagne_params,
                                        convert_refinenet_state_dict,
                                        frrn_lasagne_layout,
                                        unwrap_checkpoint)

register_all_modules()

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools', 'model_converters')


def load_tool(name):
    spec = importlib.util.spec_from_file_location(
        f'model_converters_{name}', osp.join(TOOLS, name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(name, *args):
    result = subprocess.run(
        [sys.executable, osp.join(TOOLS, name), *map(str, args)],
        capture_output=True, text=True, cwd=ROOT)
    return result.returncode, result.stdout, result.stderr


# ---- reference RefineNet in the published layout ---------------------------


class Bottleneck(nn.Module):

    def __init__(self, inplanes, planes, stride, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        if downsample:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False),
                nn.BatchNorm2d(planes * 4))
        else:
            self.downsample = None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(out + res)


class PublishedStyleBlock(nn.Module):
    """RCU / CRP containers with the published string names (only here,
    to produce the published key layout)."""

    def __init__(self, names, c, k, bias_first=False):
        super().__init__()
        self.names = names
        for j, n in enumerate(names):
            bias = bias_first and n.endswith('_conv')
            setattr(self, n, nn.Conv2d(c, c, k, 1, k // 2, bias=bias))

    def rcu(self, x):
        for i in range(len(self.names) // 2):
            res = x
            x = getattr(self, f'{i + 1}_conv')(F.relu(x))
            x = getattr(self, f'{i + 1}_conv_relu_varout_dimred')(F.relu(x))
            x = x + res
        return x

    def crp(self, x):
        top = x
        for n in self.names:
            top = getattr(self, n)(F.max_pool2d(top, 5, 1, 2))
            x = top + x
        return x


def _rcu(c, n):
    names = [f'{i}{s}' for i in range(1, n + 1)
             for s in ('_conv', '_conv_relu_varout_dimred')]
    return nn.Sequential(PublishedStyleBlock(names, c, 3, bias_first=True))


def _crp(c, k):
    names = [f'{i}_outvar_dimred' for i in range(1, 5)]
    return nn.Sequential(PublishedStyleBlock(names, c, k))


class ReferenceRefineNet(nn.Module):
    """The released RefineNet (rf50 / rf_lw50 layout and forward)."""

    def __init__(self, layers=(3, 4, 6, 3), num_classes=5,
                 lightweight=False):
        super().__init__()
        self.lw = lightweight
        k = 1 if lightweight else 3
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        inplanes = 64
        for li, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), 1):
            blocks = []
            for b in range(n):
                stride = 2 if b == 0 and li > 1 else 1
                blocks.append(Bottleneck(inplanes, planes, stride, b == 0))
                inplanes = planes * 4
            setattr(self, f'layer{li}', nn.Sequential(*blocks))
        for g, (c_in, c) in enumerate(
                [(2048, 512), (1024, 256), (512, 256), (256, 256)], 1):
            setattr(self, f'p_ims1d2_outl{g}_dimred',
                    nn.Conv2d(c_in, c, k, 1, k // 2, bias=False))
            if not lightweight:
                setattr(self, f'adapt_stage{g}_b', _rcu(c, 2))
            if g > 1:
                setattr(self, f'adapt_stage{g}_b2_joint_varout_dimred',
                        nn.Conv2d(256, 256, k, 1, k // 2, bias=False))
            setattr(self, f'mflow_conv_g{g}_pool', _crp(c, k))
            if not lightweight:
                setattr(self, f'mflow_conv_g{g}_b', _rcu(c, 3))
            if g < 4:
                setattr(self, f'mflow_conv_g{g}_b3_joint_varout_dimred',
                        nn.Conv2d(c, 256, k, 1, k // 2, bias=False))
        self.clf_conv = nn.Conv2d(256, num_classes, 3, 1, 1, bias=True)
        self.do = nn.Dropout(0.5)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        l1 = self.layer1(x)
        l2 = self.layer2(l1)
        l3 = self.layer3(l2)
        l4 = self.layer4(l3)
        if not self.lw:
            l4, l3 = self.do(l4), self.do(l3)
        prev = None
        for g, feat in enumerate([l4, l3, l2, l1], 1):
            x = getattr(self, f'p_ims1d2_outl{g}_dimred')(feat)
            if not self.lw:
                x = getattr(self, f'adapt_stage{g}_b')[0].rcu(x)
            if g > 1:
                x = getattr(self, f'adapt_stage{g}_b2_joint_varout_dimred')(x)
                x = x + F.interpolate(prev, size=feat.shape[2:],
                                      mode='bilinear', align_corners=True)
            x = F.relu(x)
            x = getattr(self, f'mflow_conv_g{g}_pool')[0].crp(x)
            if not self.lw:
                x = getattr(self, f'mflow_conv_g{g}_b')[0].rcu(x)
            if g < 4:
                prev = getattr(self,
                               f'mflow_conv_g{g}_b3_joint_varout_dimred')(x)
        if not self.lw:
            x = self.do(x)
        return self.clf_conv(x)


def _random_reference(lightweight):
    torch.manual_seed(0)
    return _randomise(ReferenceRefineNet(lightweight=lightweight))


def _randomise(ref):
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if p.dim() == 4:
                fan_in = p[0].numel()
                p.normal_(0, (1.0 / fan_in)**0.5)
            else:
                p.uniform_(0.5, 1.5) if name.endswith('weight') else \
                    p.normal_(0, 0.1)
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
    return ref.eval()


def _our_model(lightweight):
    base = 'lw_refinenet_r50.py' if lightweight else 'refinenet_r50.py'
    cfg = Config.fromfile(osp.join(ROOT, 'configs/_base_/models', base))
    cfg.model.backbone.init_cfg = None
    cfg.model.decode_head.num_classes = 5
    cfg.model.decode_head.align_corners = True
    return revert_sync_batchnorm(MODELS.build(cfg.model)).eval()


@pytest.fixture(scope='module', params=[False, True], ids=['rf50', 'rf_lw50'])
def reference(request, tmp_path_factory):
    lightweight = request.param
    ref = _random_reference(lightweight)
    tmp = tmp_path_factory.mktemp('rf')
    flat = tmp / 'flat.pth'
    torch.save(ref.state_dict(), flat)
    wrapped = tmp / 'wrapped.pth'
    torch.save({'model': {'module.' + k: v
                          for k, v in ref.state_dict().items()},
                'epoch': 3}, wrapped)
    return lightweight, ref, flat, wrapped


def test_converted_refinenet_gives_the_published_logits(reference, tmp_path):
    lightweight, ref, flat, wrapped = reference
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = ref(x)
    # as a user would: a separate process; the container form for one
    src = wrapped if lightweight else flat
    dst = tmp_path / 'mmseg.pth'
    code, out, err = run_cli('refinenet2mmseg.py', src, dst)
    assert code == 0, err
    assert 'ResNet-50, 5 classes' in out
    assert ('Light-Weight' in out) == lightweight
    ckpt = torch.load(dst, weights_only=True)
    assert set(ckpt) == {'meta', 'state_dict'}
    assert ckpt['meta']['depth'] == 50
    model = _our_model(lightweight)
    result = model.load_state_dict(ckpt['state_dict'], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    with torch.no_grad():
        logits = model(x, mode='tensor')
    assert logits.shape == expected.shape == (1, 5, 16, 16)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    # the other container converts in-process to the same tensors
    other = flat if lightweight else wrapped
    assert load_tool('refinenet2mmseg').main([str(other), str(dst)]) == 0
    again = torch.load(dst, weights_only=True)['state_dict']
    assert all(torch.equal(again[k], v)
               for k, v in ckpt['state_dict'].items())


# ---- reference LW-RefineNet-MobileNetV2 in the published layout ------------


def _conv_bn(c_in, c_out, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups,
                        bias=False),
              nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class PublishedInvertedResidual(nn.Module):
    """1x1 expansion (also for ratio 1), 3x3 depthwise, 1x1 projection,
    each conv + BN (+ ReLU6 but the last); identity shortcut where the
    shape is kept."""

    def __init__(self, c_in, c_out, t, stride):
        super().__init__()
        hidden = c_in * t
        self.shortcut = c_in == c_out and stride == 1
        self.output = nn.Sequential(
            _conv_bn(c_in, hidden, 1),
            _conv_bn(hidden, hidden, 3, stride, groups=hidden),
            _conv_bn(hidden, c_out, 1, act=False))

    def forward(self, x):
        out = self.output(x)
        return out + x if self.shortcut else out


class ReferenceLWMobileNetV2(nn.Module):
    """The released LW-RefineNet-MobileNetV2 (``mbv2`` layout and forward),
    from its published description: stem 3x3/2 to 32; layers of (expand
    ratio, width, blocks, stride) (1, 16, 1, 1), (6, 24, 2, 2),
    (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
    (6, 320, 1, 1); decoder: 1x1 convs to 256, sum per resolution, ReLU6,
    4-stage CRP, 1x1 conv, bilinear upsampling (align_corners=True)."""

    def __init__(self, num_classes=21):
        super().__init__()
        self.layer1 = _conv_bn(3, 32, 3, stride=2)
        c_in = 32
        for li, (t, c, n, stride) in enumerate(
                [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                 (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)], 2):
            blocks = []
            for b in range(n):
                blocks.append(PublishedInvertedResidual(
                    c_in, c, t, stride if b == 0 else 1))
                c_in = c
            setattr(self, f'layer{li}', nn.Sequential(*blocks))
        for level, c in zip((8, 7, 6, 5, 4, 3), (320, 160, 96, 64, 32, 24)):
            setattr(self, f'conv{level}', nn.Conv2d(c, 256, 1, bias=False))
        for g in (4, 3, 2, 1):
            setattr(self, f'crp{g}', _crp(256, 1))
        for g in (4, 3, 2):
            setattr(self, f'conv_adapt{g}', nn.Conv2d(256, 256, 1,
                                                      bias=False))
        self.segm = nn.Conv2d(256, num_classes, 3, 1, 1, bias=True)

    def forward(self, x):
        x = self.layer2(self.layer1(x))
        l3 = self.layer3(x)
        l4 = self.layer4(l3)
        l5 = self.layer5(l4)
        l6 = self.layer6(l5)
        l7 = self.layer7(l6)
        l8 = self.layer8(l7)

        def up(t, like):
            return F.interpolate(t, size=like.shape[2:], mode='bilinear',
                                 align_corners=True)

        x = F.relu6(self.conv8(l8) + self.conv7(l7))
        x = up(self.conv_adapt4(self.crp4[0].crp(x)), l6)
        x = F.relu6(self.conv6(l6) + self.conv5(l5) + x)
        x = up(self.conv_adapt3(self.crp3[0].crp(x)), l4)
        x = F.relu6(self.conv4(l4) + x)
        x = up(self.conv_adapt2(self.crp2[0].crp(x)), l3)
        x = F.relu6(self.conv3(l3) + x)
        return self.segm(self.crp1[0].crp(x))


MBV2_RELEASED = osp.join(
    ROOT, 'configs/refinenet/'
    'lw-refinenet_mobilenet-v2-released_4xb4-20k_voc12aug-512x512.py')


@pytest.fixture(scope='module')
def mbv2_reference():
    torch.manual_seed(0)
    return _randomise(ReferenceLWMobileNetV2())


def test_converted_lw_mobilenet_v2_gives_the_published_logits(
        mbv2_reference, tmp_path):
    ref = mbv2_reference
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        expected = ref(x)
    src = tmp_path / 'mbv2.pth'
    torch.save({'segmenter': {'module.' + k: v
                              for k, v in ref.state_dict().items()}}, src)
    dst = tmp_path / 'mmseg.pth'
    code, out, err = run_cli('refinenet2mmseg.py', src, dst)
    assert code == 0, err
    assert 'Light-Weight RefineNet, MobileNetV2, 21 classes' in out
    assert 'ExpandedMobileNetV2' in out and 'lw_refinenet_mobilenet_v2' in out
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['backbone'] == 'MobileNetV2'
    assert len(ckpt['state_dict']) == len(ref.state_dict())
    cfg = Config.fromfile(MBV2_RELEASED)
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
    model.load_state_dict(ckpt['state_dict'], strict=True)
    with torch.no_grad():
        logits = model(x, mode='tensor')
    assert logits.shape == expected.shape == (1, 21, 24, 16)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize('edit,match', [
    (lambda sd: sd.pop('layer2.0.output.0.0.weight'),
     r"MobileNetV2 layout: missing: \['layer2.0.output.0.0.weight'\]"),
    (lambda sd: sd.update(extra=torch.zeros(1)),
     r"keys the Light-Weight RefineNet-MobileNetV2 layout does not: "
     r"\['extra'\]"),
    (lambda sd: sd.update({'conv5.weight': torch.zeros(256, 96, 1, 1)}),
     r'shape of conv5.weight is \(256, 96, 1, 1\) but Light-Weight '
     r'RefineNet-MobileNetV2 expects \(256, 64, 1, 1\)'),
    (lambda sd: sd.pop('segm.weight'),
     r"not a Light-Weight RefineNet-MobileNetV2 checkpoint: it has no "
     r"\['segm.weight'\]"),
], ids=['missing', 'extra', 'shape', 'no-classifier'])
def test_lw_mobilenet_v2_strict_errors(mbv2_reference, edit, match):
    sd = dict(mbv2_reference.state_dict())
    edit(sd)
    with pytest.raises(ValueError, match=match):
        convert_refinenet_state_dict(sd)


def test_lw_mobilenet_v2_is_lightweight_only(mbv2_reference):
    sd = dict(mbv2_reference.state_dict())
    with pytest.raises(ValueError, match='no RefineNet .* on MobileNetV2'):
        convert_refinenet_state_dict(sd, lightweight=False)
    _, info = convert_refinenet_state_dict(sd)
    assert info == dict(backbone='MobileNetV2', depth=None, num_classes=21,
                        lightweight=True, num_params=3_284_565)


# ---- containers and strict checks -----------------------------------------


@pytest.fixture(scope='module')
def lw_state_dict():
    return _random_reference(True).state_dict()


@pytest.mark.parametrize('wrap', [
    lambda sd: sd,
    lambda sd: {'state_dict': sd},
    lambda sd: {'weights': {'module.' + k: v for k, v in sd.items()}},
    lambda sd: {'segmenter': {'module.' + k: v for k, v in sd.items()},
                'epoch_start': 5, 'best_val': 0.7},
    lambda sd: {'model': {'state_dict': sd}},
], ids=['flat', 'state_dict', 'weights-module', 'segmenter', 'nested'])
def test_unwrap_containers(lw_state_dict, wrap):
    sd = unwrap_checkpoint(wrap(dict(lw_state_dict)))
    assert list(sd) == list(lw_state_dict)
    converted, info = convert_refinenet_state_dict(sd)
    assert info == dict(backbone='ResNet-50', depth=50, num_classes=5,
                        lightweight=True, num_params=info['num_params'])


def test_unwrap_rejects_non_checkpoints():
    with pytest.raises(ValueError, match='not a checkpoint.*top-level keys'):
        unwrap_checkpoint({'epoch': 3, 'lr': 0.1})
    with pytest.raises(ValueError, match='not a checkpoint'):
        unwrap_checkpoint([1, 2])


def test_old_checkpoints_without_num_batches_tracked(lw_state_dict):
    sd = {k: v for k, v in lw_state_dict.items()
          if not k.endswith('num_batches_tracked')}
    converted, _ = convert_refinenet_state_dict(sd)
    assert converted['backbone.bn1.num_batches_tracked'] == 0


@pytest.mark.parametrize('edit,match', [
    (lambda sd: sd.update(extra=torch.zeros(1)),
     r"keys the Light-Weight RefineNet-50 layout does not: \['extra'\]"),
    (lambda sd: sd.pop('layer2.1.bn2.running_var'),
     r"missing: \['layer2.1.bn2.running_var'\]"),
    (lambda sd: sd.pop('mflow_conv_g3_pool.0.2_outvar_dimred.weight'),
     r'missing: \[.mflow_conv_g3_pool.0.2_outvar_dimred.weight'),
    (lambda sd: sd.update(
        {'layer1.0.conv2.weight': torch.zeros(64, 64, 1, 1)}),
     r'shape of layer1.0.conv2.weight is \(64, 64, 1, 1\) but Light-Weight '
     r'RefineNet-50 expects \(64, 64, 3, 3\)'),
    (lambda sd: sd.update({'layer3.6.conv1.weight': torch.zeros(1)}),
     r'layer3 has 7 blocks'),
], ids=['extra', 'missing-buffer', 'missing-param', 'shape', 'depth'])
def test_strict_errors(lw_state_dict, edit, match):
    sd = dict(lw_state_dict)
    edit(sd)
    with pytest.raises(ValueError, match=match):
        convert_refinenet_state_dict(sd)


def test_forcing_the_wrong_variant_fails_on_shapes(lw_state_dict):
    with pytest.raises(ValueError, match='missing|shape'):
        convert_refinenet_state_dict(dict(lw_state_dict), lightweight=False)


def test_frrn_state_dict_is_not_a_refinenet(frrn_model):
    with pytest.raises(ValueError, match='not a RefineNet checkpoint'):
        convert_refinenet_state_dict(frrn_model.state_dict())


def test_refinenet_cli_errors(tmp_path, frrn_model, capsys):
    tool = load_tool('refinenet2mmseg')
    dst = tmp_path / 'out.pth'
    frrn_file = tmp_path / 'frrn.pth'
    torch.save(frrn_model.state_dict(), frrn_file)
    text = tmp_path / 'notes.txt'
    text.write_text('hello')
    for src, match in ((tmp_path / 'missing.pth', 'no such file'),
                       (text, 'not a readable torch checkpoint'),
                       (frrn_file, 'not a RefineNet checkpoint')):
        assert tool.main([str(src), str(dst)]) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and match in err, err
        assert len(err.strip().splitlines()) == 1
        assert not dst.exists()
    with pytest.raises(SystemExit) as exc:
        tool.main([str(frrn_file)])
    assert exc.value.code == 2
    assert list(tmp_path.glob('.tmp_*')) == []
    # once as a separate process: one line, no traceback
    code, _, err = run_cli('refinenet2mmseg.py', frrn_file, dst)
    assert code == 2 and err.startswith('error: not a RefineNet')
    assert 'Traceback' not in err and not dst.exists()


# ---- FRRN from Lasagne -----------------------------------------------------


@pytest.fixture(scope='module')
def frrn_model():
    torch.manual_seed(1)
    model = MODELS.build(
        dict(type='EncoderDecoder',
             backbone=dict(type='FRRN', arch='A'),
             decode_head=dict(type='FRRNHead', in_channels=48,
                              num_classes=19)))
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2)
    return model.eval()


# The official release saves a model with ``np.savez(f,
# *lasagne.layers.get_all_param_values(output_layers))`` (TobyPDE/FRRN,
# dltools/nnet.py): unnamed arrays in the order of ``get_all_layers``, a
# depth-first post-order walk from the output that visits a merge layer's
# inputs in the order given, each layer's parameters in creation order
# (Conv2DLayer: W, b; BatchNormLayer: beta, gamma, mean, inv_std). Written
# out by hand for the graph of FRRNABuilder / FRRNBBuilder
# (dltools/architectures.py), independently of the converter, the file
# holds:
#
# 1. the 5x5 stem convolution: W, then its batch norm;
# 2. each of the 3 stem residual units: 3x3 W, BN, 3x3 W, BN (48 -> 48,
#    no projection);
# 3. the 1x1 convolution to the residual stream: W, BN (add_conv with
#    nonlinearity=False, but bn left on);
# 4. each FRRU in build order: 3x3 W, BN, 3x3 W, BN, then its 1x1
#    convolution back to the stream, W and b (bn=False, bias=True). That
#    1x1 convolution is only reached through the stream, i.e. from the next
#    FRRU's pooled stream input (the second input of its concat) or the
#    final concat, so it comes after its FRRU's own convolutions and before
#    the next FRRU's;
# 5. each end residual unit: 3x3 W, BN, 3x3 W, BN; the first one adds a
#    1x1 projection W (no bias, no BN) that comes last, as the second input
#    of ElemwiseSumLayer([convs, projection]). Its input has 96 + 32
#    channels (the upscaled last decoder FRRU and the stream; the builder's
#    ``base_channels + lanes`` only decides that a projection is needed);
# 6. the 1x1 classifier: W, b.
#
# FRRUs per pooling level and their channels (multiplier 2, 48 base
# channels), from the builders:
OFFICIAL_FRRUS = {
    'A': dict(encoder=[(3, 96), (4, 192), (2, 384), (2, 384)],
              decoder=[(2, 192), (2, 192), (2, 96)]),
    'B': dict(encoder=[(3, 96), (4, 192), (2, 384), (2, 384), (2, 384)],
              decoder=[(2, 192), (2, 192), (2, 192), (2, 96)]),
}


def official_npz_order(arch, num_classes=19, base=48, lanes=32):
    """``(our key, kind, Lasagne shape)`` of ``arr_0, arr_1, ...`` of an
    official FRRN file, from the description above."""
    arrays = []

    def conv(key, c_out, c_in, k, bias=False):
        arrays.append((key + '.weight', 'W', (c_out, c_in, k, k)))
        if bias:
            arrays.append((key + '.bias', 'b', (c_out, )))

    def bn(key, c):
        for ours, kind in (('bias', 'beta'), ('weight', 'gamma'),
                           ('running_mean', 'mean'),
                           ('running_var', 'inv_std')):
            arrays.append((f'{key}.{ours}', kind, (c, )))

    def conv_bn(key, c_out, c_in, k):
        conv(key + '.conv', c_out, c_in, k)
        bn(key + '.bn', c_out)

    conv_bn('backbone.stem_conv', base, 3, 5)
    for i in range(3):
        conv_bn(f'backbone.stem_units.{i}.conv1', base, base, 3)
        conv_bn(f'backbone.stem_units.{i}.conv2', base, base, 3)
    conv_bn('backbone.residual_conv', lanes, base, 1)
    c_in = base
    for part in ('encoder', 'decoder'):
        for s, (num_units, c) in enumerate(OFFICIAL_FRRUS[arch][part]):
            for u in range(num_units):
                unit = f'backbone.{part}_stages.{s}.{u}'
                conv_bn(unit + '.conv1', c, c_in + lanes, 3)
                conv_bn(unit + '.conv2', c, c, 3)
                conv(unit + '.conv_res.conv', lanes, c, 1, bias=True)
                c_in = c
    c_in += lanes
    for i in range(3):
        conv_bn(f'backbone.end_units.{i}.conv1', base, c_in, 3)
        conv_bn(f'backbone.end_units.{i}.conv2', base, base, 3)
        if c_in != base:
            conv(f'backbone.end_units.{i}.shortcut.conv', base, c_in, 1)
        c_in = base
    conv('decode_head.conv_seg', num_classes, base, 1, bias=True)
    return arrays


@pytest.mark.parametrize('arch', ['A', 'B'])
def test_frrn_layout_is_the_official_save_order(arch):
    """The converter's table, array by array, against the hand-written
    official order: two same-shaped parameters swapped in the table (two
    3x3 convolutions, a BN's beta and gamma) would load every official
    file wrongly without any shape error."""
    layout = frrn_lasagne_layout(arch, 19)
    official = official_npz_order(arch)
    for i, (got, want) in enumerate(zip(layout, official)):
        assert got == want, f'arr_{i}: converter {got}, official {want}'
    assert len(layout) == len(official)


def to_lasagne(model, eps=1e-5):
    """Ours -> the official npz arrays, in the official order and by
    inverting the converter's rules (both written independently of it)."""
    sd = model.state_dict()
    arrays = []
    for key, kind, shape in official_npz_order('A'):
        v = sd[key].double().numpy()
        if kind == 'W':
            v = v[:, :, ::-1, ::-1].copy()
        elif kind == 'inv_std':
            v = 1 / np.sqrt(v + eps)
        assert v.shape == shape
        arrays.append(v.astype(np.float32))
    return arrays


def test_frrn_layout_is_our_module_order_and_shapes(frrn_model):
    layout = frrn_lasagne_layout('A', 19)
    sd = frrn_model.state_dict()
    expected = {k: tuple(v.shape) for k, v in sd.items()
                if not k.endswith('num_batches_tracked')}
    assert {k: s for k, _, s in layout} == expected
    assert len(layout) == len(expected) == 277

    def modules(keys):
        return list(dict.fromkeys(k.rsplit('.', 1)[0] for k in keys))
    assert modules(k for k, _, _ in layout) == modules(expected)
    # beta, gamma, mean, inv_std; W (+ b)
    assert [kind for _, kind, _ in layout[:6]] == [
        'W', 'beta', 'gamma', 'mean', 'inv_std', 'W']
    # a residual unit with a projection: the projection comes last
    end0 = [k for k, _, _ in layout if 'end_units.0.' in k]
    assert end0[-1] == 'backbone.end_units.0.shortcut.conv.weight'
    b_layout = frrn_lasagne_layout('B', 19)
    assert len(b_layout) == 325


def test_frrn_round_trip_through_cli(frrn_model, tmp_path):
    arrays = to_lasagne(frrn_model)
    src = tmp_path / 'frrn_a.npz'
    np.savez(src, *arrays)
    dst = tmp_path / 'frrn_a.pth'
    code, out, err = run_cli('frrn_lasagne2mmseg.py', src, dst, '--arch',
                             'A', '--num-classes', 19)
    assert code == 0, err
    assert '17,746,803 parameters' in out and '277 arrays' in out
    converted = torch.load(dst, weights_only=True)['state_dict']
    ours = frrn_model.state_dict()
    assert set(converted) == set(ours)
    for k, v in ours.items():
        torch.testing.assert_close(converted[k], v, rtol=1e-5, atol=1e-6,
                                   msg=k)
    # the flip: a 3x3 filter stored by Lasagne is our filter rotated 180°
    w = converted['backbone.stem_units.0.conv1.conv.weight']
    assert not torch.equal(w, torch.from_numpy(arrays[5]))
    torch.testing.assert_close(
        w, torch.from_numpy(arrays[5]).flip(2, 3))
    # same outputs
    model = MODELS.build(
        dict(type='EncoderDecoder', backbone=dict(type='FRRN', arch='A'),
             decode_head=dict(type='FRRNHead', in_channels=48,
                              num_classes=19))).eval()
    model.load_state_dict(converted, strict=True)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        got, want = model(x, mode='tensor'), frrn_model(x, mode='tensor')
    # float32 round off of inv_std, amplified by a random deep net
    assert (got - want).abs().max() < 1e-3 * want.abs().max()


def test_frrn_inv_std_becomes_running_var():
    arrays = [np.random.rand(*s).astype(np.float32) + 0.5
              for _, _, s in official_npz_order('A')]
    sd, _ = convert_frrn_lasagne_params(arrays, 'A', bn_eps=1e-5)
    inv_std = arrays[4]  # stem BN
    np.testing.assert_allclose(sd['backbone.stem_conv.bn.running_var'],
                               1 / inv_std.astype(np.float64)**2 - 1e-5,
                               rtol=1e-6)
    bn = nn.BatchNorm2d(48, eps=1e-5).eval()
    bn.running_var.copy_(sd['backbone.stem_conv.bn.running_var'])
    x = torch.randn(1, 48, 2, 2)
    torch.testing.assert_close(
        bn(x), x * torch.from_numpy(inv_std)[:, None, None], rtol=1e-5,
        atol=1e-5)


def test_frrn_wrong_arrays_fail_clearly(frrn_model, tmp_path, capsys):
    arrays = to_lasagne(frrn_model)
    with pytest.raises(ValueError, match=r'the file has 276 arrays but FRRN '
                       r'A with 19 classes has 277: arr_276'):
        convert_frrn_lasagne_params(arrays[:-1], 'A', 19)
    with pytest.raises(ValueError, match='arr_277 onwards'):
        convert_frrn_lasagne_params(arrays + [arrays[0]], 'A', 19)
    bad = list(arrays)
    bad[10] = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match=r'arr_10 has shape \(3, 3\) but '
                       r'FRRN A with 19 classes expects \(48, 48, 3, 3\)'):
        convert_frrn_lasagne_params(bad, 'A', 19)
    with pytest.raises(ValueError, match=r'arr_\d+ has shape .* FRRN B'):
        convert_frrn_lasagne_params(arrays, 'B', 19)
    # via the CLI: exit 2, one line, nothing written
    src = tmp_path / 'short.npz'
    np.savez(src, *arrays[:-3])
    dst = tmp_path / 'out.pth'
    code, _, err = run_cli('frrn_lasagne2mmseg.py', src, dst, '--arch', 'A',
                           '--num-classes', 19)
    assert code == 2 and err.startswith('error: the file has 274 arrays')
    assert 'Traceback' not in err and not dst.exists()
    tool = load_tool('frrn_lasagne2mmseg')
    named = tmp_path / 'named.npz'
    np.savez(named, weights=arrays[0])
    text = tmp_path / 'x.npz'
    text.write_text('hello')
    for src, match in ((src, 'arr_'), (tmp_path / 'nope.npz', 'no such'),
                       (named, 'not a Lasagne parameter file'),
                       (text, 'not a readable .npz')):
        assert tool.main([str(src), str(dst), '--arch', 'A']) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and match in err, err
        assert not dst.exists()
    with pytest.raises(SystemExit) as exc:
        tool.main([str(src), str(dst), '--arch', 'C'])
    assert exc.value.code == 2 and not dst.exists()
