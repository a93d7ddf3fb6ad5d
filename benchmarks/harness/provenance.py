"""Which code a result came from: the commit and whether the tree differed.

Standard library only, so that light processes (the training supervisors
of ``benchmarks/camvid_experiment.py``) can record it without importing
torch or MMSeg.
"""
import os
import os.path as osp
import subprocess


def git_commit(repo):
    """The checked-out commit, read from ``.git`` without running git.

    A copy of the tree without ``.git`` (e.g. one exported with ``git
    archive`` to a machine without git) gets it from ``$MMSEG_RN_COMMIT``,
    set by whoever made the copy; None if unset.
    """
    git = osp.join(repo, '.git')
    if not osp.exists(git):
        return os.environ.get('MMSEG_RN_COMMIT') or None
    try:
        if osp.isfile(git):
            # a worktree (git worktree add) or submodule: `gitdir: <dir>`,
            # whose branches live in the main repository (`commondir`)
            with open(git) as f:
                git = osp.join(repo, f.read().split(':', 1)[1].strip())
        common = git
        if osp.isfile(osp.join(git, 'commondir')):
            with open(osp.join(git, 'commondir')) as f:
                common = osp.join(git, f.read().strip())
        with open(osp.join(git, 'HEAD')) as f:
            head = f.read().strip()
        if not head.startswith('ref:'):
            return head
        ref = head.split(None, 1)[1]
        ref_file = osp.join(common, ref)
        if osp.isfile(ref_file):
            with open(ref_file) as f:
                return f.read().strip()
        with open(osp.join(common, 'packed-refs')) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    except OSError:
        pass
    return None


# Outputs, not inputs, of a run: results and the pages rendered from them.
# A change there does not make a tree dirty, so that one run writing its
# results does not mark the next run's records dirty.
NOT_DIRTYING = ('benchmarks/results', 'docs')


def git_dirty(repo):
    """Whether tracked files differ from the commit; None if unknown.

    Runs ``git status --porcelain --untracked-files=no`` with
    ``GIT_OPTIONAL_LOCKS=0``, so that it never takes the index lock of a
    tree others work in. Changes under :data:`NOT_DIRTYING` do not count.
    A copy without ``.git`` gets it from ``$MMSEG_RN_DIRTY`` (``1`` or
    ``0``).
    """
    if not osp.exists(osp.join(repo, '.git')):
        flag = os.environ.get('MMSEG_RN_DIRTY')
        return None if flag not in ('0', '1') else flag == '1'
    env = dict(os.environ, GIT_OPTIONAL_LOCKS='0')
    try:
        proc = subprocess.run(
            ['git', 'status', '--porcelain', '--untracked-files=no', '--',
             '.'] + [f':(exclude){path}' for path in NOT_DIRTYING],
            cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return bool(proc.stdout.strip())
