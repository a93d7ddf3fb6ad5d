import os.path as osp

import mmseg_refinenet


def test_tests_are_this_projects(repo_root):
    # the mmseg wheel ships a top-level ``tests`` package: make sure this
    # file is the project's own and the plugin comes from this checkout.
    assert osp.dirname(osp.abspath(__file__)) == osp.join(repo_root, 'tests')
    assert osp.dirname(osp.abspath(mmseg_refinenet.__file__)) == osp.join(
        repo_root, 'mmseg_refinenet')
