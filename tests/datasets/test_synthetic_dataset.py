"""The generated dataset of the quick start: regenerating replaces it, and
folders it did not write are never touched."""
import os

import pytest

from mmseg_refinenet.datasets import generate_synthetic_dataset


def _names(root, kind, split):
    return sorted(os.listdir(root / kind / split))


def test_regenerating_leaves_no_old_images(tmp_path):
    root = tmp_path / 'data'
    generate_synthetic_dataset(str(root), num_train=5, num_val=3, seed=0,
                               size=(16, 16))
    first = (root / 'img_dir' / 'train' / '0000.png').read_bytes()
    # fewer images and another seed: only the new ones remain
    generate_synthetic_dataset(str(root), num_train=2, num_val=1, seed=1,
                               size=(16, 16))
    for kind in ('img_dir', 'ann_dir'):
        assert _names(root, kind, 'train') == ['0000.png', '0001.png']
        assert _names(root, kind, 'val') == ['0000.png']
    assert (root / 'img_dir' / 'train' / '0000.png').read_bytes() != first


def test_folders_with_other_files_are_left_alone(tmp_path):
    root = tmp_path / 'data'
    own = root / 'img_dir' / 'train'
    own.mkdir(parents=True)
    (own / 'my_image.png').write_bytes(b'not generated')
    with pytest.raises(FileExistsError,
                       match='did not write.*empty or new folder'):
        generate_synthetic_dataset(str(root), num_train=2, num_val=1,
                                   size=(16, 16))
    assert os.listdir(own) == ['my_image.png']


def test_a_dataset_generated_before_the_marker_is_replaced(tmp_path):
    root = tmp_path / 'data'
    generate_synthetic_dataset(str(root), num_train=3, num_val=2,
                               size=(16, 16))
    (root / '.mmseg_refinenet_synthetic').unlink()
    generate_synthetic_dataset(str(root), num_train=1, num_val=1,
                               size=(16, 16))
    assert _names(root, 'img_dir', 'train') == ['0000.png']
