import os.path as osp

import mmseg_refinenet


def test_tests_are_this_projects(repo_root):
    # the mmseg wheel ships a top-level ``tests`` package: make sure this
    # file is the project's own and the plugin comes from this checkout.
    assert osp.dirname(osp.abspath(__file__)) == osp.join(repo_root, 'tests')
    assert osp.dirname(osp.abspath(mmseg_refinenet.__file__)) == osp.join(
        repo_root, 'mmseg_refinenet')


def _declared_requirements(repo_root):
    import tomllib

    from packaging.requirements import Requirement
    with open(osp.join(repo_root, 'pyproject.toml'), 'rb') as f:
        project = tomllib.load(f)['project']
    return {
        Requirement(r).name.lower(): Requirement(r)
        for r in project['dependencies']
    }


def test_declared_bounds_hold_the_stack_under_test(repo_root):
    """The bounds in pyproject.toml are the tested ones: the stack this
    suite runs on (newest or oldest) lies inside each of them."""
    from importlib.metadata import PackageNotFoundError, version
    declared = _declared_requirements(repo_root)
    for name in ('torch', 'mmcv', 'mmengine', 'mmsegmentation', 'numpy',
                 'opencv-python', 'prettytable', 'psutil', 'ftfy', 'regex'):
        assert name in declared, name
    for name, req in declared.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            if name == 'opencv-python':  # or a headless / contrib build
                continue
            raise
        local = installed.split('+')[0]  # torch's +cpu / +cu121
        assert req.specifier.contains(local, prereleases=True), (
            f'{name} {installed} is outside the declared {req}')


def test_mim_files_are_in_the_sdist_manifest(repo_root):
    """What setup.py copies into .mim for a wheel is what MANIFEST.in puts
    into the sdist, which the wheel is built from."""
    import ast
    with open(osp.join(repo_root, 'setup.py')) as f:
        tree = ast.parse(f.read())
    mim_files, = [
        ast.literal_eval(node.value) for node in tree.body
        if isinstance(node, ast.Assign)
        and getattr(node.targets[0], 'id', None) == 'MIM_FILES'
    ]
    manifest = set()
    with open(osp.join(repo_root, 'MANIFEST.in')) as f:
        for line in f:
            words = line.split()
            if words and words[0] in ('include', 'graft'):
                manifest.update(words[1:])
    assert set(mim_files) <= manifest, set(mim_files) - manifest
    for name in mim_files:
        assert osp.exists(osp.join(repo_root, name)), name
    assert osp.isfile(osp.join(repo_root, 'LICENSE'))
