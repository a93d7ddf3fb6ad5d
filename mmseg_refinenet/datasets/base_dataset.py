"""The base of the plugin's datasets: a broken folder fails, loudly.

MMSeg's :class:`~mmseg.datasets.BaseSegDataset` lists the image folder and
derives every label path from the image name. It checks neither side:

* a wrong ``data_root`` / ``data_prefix`` / ``img_suffix`` or an empty
  folder gives a dataset of 0 samples (MMEngine then fails in
  ``np.concatenate`` with "need at least one array to concatenate", or a
  training loop waits on an empty loader);
* an image without its label file is listed anyway and fails only when the
  pipeline reaches it, possibly hours into training;
* a truncated or corrupt file fails in the pipeline with an assertion
  ("failed to load image") or a decoder error that does not say which file
  is broken or what to do.

:class:`StrictSegDataset` checks the layout once, when the dataset is
built, and names the folder or file and the expected layout.
"""
import os.path as osp
from typing import List

import mmcv
from mmengine import fileio

from mmseg.datasets import BaseSegDataset

_MAX_SHOWN = 3


def _shown(items, limit=_MAX_SHOWN):
    return ', '.join(items[:limit]) + (', ...' if len(items) > limit else '')


class StrictSegDataset(BaseSegDataset):
    """:class:`BaseSegDataset` that refuses an empty or broken folder.

    ``load_data_list`` (run once when the dataset is built) raises a
    :class:`FileNotFoundError` that names the folder, the file and the
    expected layout when

    * the image folder (``data_root`` + ``data_prefix.img_path``) or the
      label folder (``data_prefix.seg_map_path``) does not exist;
    * the image folder holds no image with ``img_suffix`` (the message lists
      what it holds instead, to show a wrong suffix);
    * an image has no label file of the same name with ``seg_map_suffix``;
    * with an ``ann_file``, a listed image does not exist.

    Listing the label folder once costs about as much as MMSeg's own listing
    of the image folder. Without ``seg_map_path`` in ``data_prefix`` (an
    unlabelled test set) labels are not looked for.

    ``prepare_data`` turns a sample whose image or label file cannot be
    decoded into an :class:`OSError` naming the file. The files are only
    re-read when the pipeline has already failed, so a healthy dataset pays
    nothing; an error that is not about an unreadable file propagates
    unchanged. Broken files are never skipped silently.
    """

    def _layout(self) -> str:
        label = f' and labels <name>{self.seg_map_suffix} in ' \
            f'data_prefix.seg_map_path' if self.data_prefix.get(
                'seg_map_path') is not None else ''
        return (f'images <name>{self.img_suffix} in data_root + '
                f'data_prefix.img_path{label} (the layout that '
                'tools/dataset_converters/ writes)')

    def _list(self, folder: str, suffix) -> List[str]:
        return sorted(
            fileio.list_dir_or_file(
                folder,
                list_dir=False,
                suffix=suffix,
                recursive=True,
                backend_args=self.backend_args))

    def _check_folder(self, folder: str, what: str, field: str) -> None:
        if not fileio.isdir(folder, backend_args=self.backend_args):
            raise FileNotFoundError(
                f'{type(self).__name__}: {what} folder {folder!r} does not '
                f'exist; check data_root and data_prefix.{field}. Expected '
                f'{self._layout()}')

    def load_data_list(self) -> List[dict]:
        """List the samples as MMSeg does, then check the layout."""
        owner = type(self).__name__
        img_dir = self.data_prefix.get('img_path', None)
        ann_dir = self.data_prefix.get('seg_map_path', None)
        # the same condition as BaseSegDataset.load_data_list
        from_ann_file = bool(self.ann_file) and not osp.isdir(self.ann_file)
        if img_dir is not None:
            self._check_folder(img_dir, 'image', 'img_path')
        if ann_dir is not None:
            self._check_folder(ann_dir, 'label', 'seg_map_path')
        data_list = super().load_data_list()

        if not data_list:
            if from_ann_file:
                raise FileNotFoundError(
                    f'{owner}: ann_file {self.ann_file!r} lists no images; '
                    'expected one image name (without suffix) per line')
            found = self._list(img_dir, None)
            held = (f'it holds {len(found)} other files, e.g. '
                    f'{_shown(found)}; set img_suffix to theirs'
                    if found else 'it is empty')
            raise FileNotFoundError(
                f'{owner}: no images *{self.img_suffix} in {img_dir!r} '
                f'({held}). Check data_root, data_prefix and img_suffix; '
                f'expected {self._layout()}')

        if from_ann_file:
            images = set(self._list(img_dir, self.img_suffix))
            missing = [
                info['img_path'] for info in data_list
                if self._relative(info['img_path'], img_dir) not in images
            ]
            if missing:
                raise FileNotFoundError(
                    f'{owner}: {len(missing)} of {len(data_list)} images '
                    f'listed in ann_file {self.ann_file!r} do not exist: '
                    f'{_shown(missing)}. Remove them from the list or '
                    'restore the files')

        if ann_dir is not None:
            labels = set(self._list(ann_dir, self.seg_map_suffix))
            missing = [
                info for info in data_list if self._relative(
                    info['seg_map_path'], ann_dir) not in labels
            ]
            if missing:
                examples = [
                    f"{osp.basename(info['img_path'])} (expected "
                    f"{info['seg_map_path']})" for info in missing
                ]
                raise FileNotFoundError(
                    f'{owner}: {len(missing)} of {len(data_list)} images in '
                    f'{img_dir!r} have no label file in {ann_dir!r}: '
                    f'{_shown(examples)}. Every image needs a label map of '
                    f'the same name with suffix {self.seg_map_suffix!r}; '
                    're-run the converter, or move the unlabelled images '
                    'out of the folder')
        return data_list

    @staticmethod
    def _relative(path: str, folder: str) -> str:
        """``path`` relative to ``folder`` (paths are built by osp.join)."""
        rel = path[len(folder):] if path.startswith(folder) else path
        return rel.lstrip('/\\')

    def _unreadable(self, path: str) -> str:
        """Why the existing file ``path`` does not decode, or ''."""
        try:
            data = fileio.get(path, backend_args=self.backend_args)
            img = mmcv.imfrombytes(data, flag='unchanged', backend='cv2')
        except Exception as err:  # any decoder failure means unreadable
            return f'decoding failed: {err}'
        return 'the decoder returned nothing' if img is None else ''

    def prepare_data(self, idx):
        """Run the pipeline on sample ``idx``; name the file if it is
        unreadable."""
        try:
            return super().prepare_data(idx)
        except Exception as err:
            info = self.get_data_info(idx)
            for key, what, other in (('img_path', 'image', 'label map'),
                                     ('seg_map_path', 'label map',
                                      'image')):
                path = info.get(key)
                if not path:
                    continue
                if not fileio.exists(path, backend_args=self.backend_args):
                    raise FileNotFoundError(
                        f'{type(self).__name__}: {what} file {path!r} '
                        f'(sample {idx}) does not exist any more; it was '
                        'there when the dataset was built. Restore it or '
                        'rebuild the dataset') from err
                reason = self._unreadable(path)
                if reason:
                    raise OSError(
                        f'{type(self).__name__}: {what} file {path!r} '
                        f'(sample {idx}) is not a readable image ({reason}; '
                        f'the pipeline failed with {type(err).__name__}: '
                        f'{err}). It is truncated, corrupt or of another '
                        'format: re-convert it with '
                        f'tools/dataset_converters/, or delete it together '
                        f'with its {other}') from err
            raise
