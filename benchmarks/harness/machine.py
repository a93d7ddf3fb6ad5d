"""What a result depends on: the device, the versions and the commit.

torch and MMSeg are imported by the functions that need them: the CPU's
name (:func:`cpu_name`) is read without them.
"""
import os
import platform

from .provenance import git_commit, git_dirty


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device):
    import torch
    if str(device).startswith('cuda'):
        return torch.cuda.get_device_name(torch.device(device))
    return 'cpu'


def environment(device, repo=None, check_dirty=True):
    """What a result depends on, for every record."""
    import mmcv
    import mmengine
    import mmseg
    import torch
    info = dict(
        device=device_name(device),
        cpu=cpu_name(),
        torch=torch.__version__,
        cuda=torch.version.cuda if str(device).startswith('cuda') else None,
        mmseg=mmseg.__version__,
        mmcv=mmcv.__version__,
        mmengine=mmengine.__version__,
        python=platform.python_version(),
        threads=torch.get_num_threads(),
        cpu_count=os.cpu_count(),
    )
    if str(device).startswith('cuda'):
        info.update(
            cudnn=torch.backends.cudnn.version(),
            cudnn_benchmark=torch.backends.cudnn.benchmark,
            allow_tf32=torch.backends.cudnn.allow_tf32)
    if repo is not None:
        info['commit'] = git_commit(repo)
        info['dirty'] = git_dirty(repo) if check_dirty else None
    return info
