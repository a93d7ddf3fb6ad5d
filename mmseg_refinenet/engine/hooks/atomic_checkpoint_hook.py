"""A ``CheckpointHook`` whose checkpoints survive a kill at any moment and
whose resumed runs continue exactly where the killed run stopped.

What MMEngine 0.10.7's ``CheckpointHook`` does when it saves at iteration N,
and what a ``SIGKILL`` (or a power loss) at each step leaves behind:

1. With ``max_keep_ckpts > 0``, it first deletes the oldest kept checkpoint.
   With ``max_keep_ckpts=1`` that is the file ``last_checkpoint`` names: a
   kill before step 3 leaves ``last_checkpoint`` pointing at a deleted
   file, and ``--resume`` fails.
2. ``Runner.save_checkpoint`` serialises the checkpoint into memory, then
   ``LocalBackend.put`` opens ``iter_N.pth`` with ``'wb'`` and writes it: a
   kill during the write leaves a truncated ``iter_N.pth``. It is not yet
   named by ``last_checkpoint``, *except* when the file is written a second
   time: after a validation that improves ``save_best``'s metric, the hook
   saves ``iter_N.pth`` again in place, and a kill then leaves
   ``last_checkpoint`` naming a truncated file.
3. ``last_checkpoint`` is rewritten with ``open(..., 'w')``: a kill between
   the truncation and the write leaves it empty, and ``--resume`` then tries
   to load the path ``''``.
4. With ``save_best``, a validation that improves the metric first deletes
   the previous ``best_*.pth``, then writes the new one, then saves
   ``iter_N.pth`` again to record it: a kill in between leaves no best
   checkpoint at all, and the last checkpoint names the deleted one.
Nothing is ``fsync``-ed, so after a power loss ``last_checkpoint`` can name
a checkpoint whose data never reached the disk.

:class:`AtomicCheckpointHook` writes every checkpoint and ``last_checkpoint``
through :func:`~mmseg_refinenet.engine.fileio.atomic_write` (temporary file,
``fsync``, ``os.replace``, ``fsync`` of the folder) and deletes outdated
checkpoints only once the new one and ``last_checkpoint`` are in place; the
previous best checkpoint likewise only once the new best and the checkpoint
that names it are written. At every moment ``last_checkpoint`` names a
complete checkpoint, and a best checkpoint exists once one was saved; a
kill leaves at most a hidden ``.*.partial`` file, removed when training
starts again (or, killed between the new best and the checkpoint naming it,
two best checkpoints, the newer not named by the resumed run).

It also makes a resumed run continue *exactly*: MMEngine restores weights,
optimizer, schedulers and message hub, and replays the data order and the
data pipeline's randomness by advancing the dataloader, but it reseeds the
global generators instead of restoring them, so dropout and everything
else random in the training step take other values than in an uninterrupted
run. The hook saves the states of Python's, numpy's, torch's and CUDA's
global generators of every rank with each checkpoint and, on resume,
restores each rank's own states at the moment the killed run saved them:
after the dataloader has been advanced past the trained iterations and
before the next batch is drawn. Validation no longer moves the training's
random stream (its states are put back after every validation), so a
checkpoint taken before a validation holds the states that the next
training iteration starts from. With a fixed seed and
``randomness=dict(deterministic=True)``, a killed and resumed run then ends
with the same weights, bit for bit, as an uninterrupted one, on one process
or several.

With ``num_workers > 0`` the data pipeline runs in worker processes that
MMEngine seeds from the seed, the rank and the worker id; advancing the
dataloader replays them, so the result is exact as well. The data order
needs the same seed as the killed run: a fixed ``randomness.seed``, or this
project's ``tools/train.py --resume``, which reuses the seed stored in the
checkpoint (MMEngine alone, e.g. through ``mim train``, draws a new one).
"""
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional

from mmengine.dist import all_gather_object, get_dist_info, is_main_process
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook
from mmseg.registry import HOOKS

from ..fileio import atomic_write, remove_partial_files
from ..random_state import get_rng_states, set_rng_states

RNG_STATES_KEY = 'rng_states'
# selects fileio.AtomicLocalBackend
ATOMIC_BACKEND_ARGS = dict(backend='atomic_local')


class _RestoreRNGBeforeBatch:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` on resume.

    The loop advances the iterator by the iterations already trained, then
    draws the batch of the first new iteration. Just before that draw this
    restores the saved generator states and puts the original iterator back.
    """

    def __init__(self, loop, iterator: Iterator, skip: int,
                 states: Dict[str, Any], logger) -> None:
        self._loop = loop
        self._iterator = iterator
        self._skip = skip
        self._states = states
        self._logger = logger

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip > 0:
            self._skip -= 1
            return next(self._iterator)
        self._loop.dataloader_iterator = self._iterator
        set_rng_states(self._states)
        self._logger.info('Restored the random generator states saved with '
                          'the checkpoint.')
        return next(self._iterator)

    def __getattr__(self, name):
        return getattr(self._iterator, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` with atomic writes and exact resume.

    Takes every argument of :class:`mmengine.hooks.CheckpointHook`, with the
    same defaults. For checkpoints in a local folder (``out_dir`` or the
    work dir, no ``backend_args``), every checkpoint and ``last_checkpoint``
    is written atomically (see the module documentation); with another
    storage backend the checkpoints are written by that backend and only
    ``last_checkpoint`` atomically.

    Args:
        save_rng_state (bool): Save the global random generator states of
            every rank with each checkpoint, restore them on resume, and
            keep validation from moving them. Default: True.
        **kwargs: The arguments of ``CheckpointHook``.
    """

    def __init__(self, *args, save_rng_state: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.save_rng_state = save_rng_state
        # states of all ranks for the checkpoint being written
        self._states_to_save: Optional[List[Dict[str, Any]]] = None
        # this rank's training states, held while a validation runs
        self._states_before_val: Optional[Dict[str, Any]] = None
        # iteration and states of all ranks of the loaded checkpoint
        self._loaded: Optional[Dict[str, Any]] = None

    def before_train(self, runner) -> None:
        out_dir = runner.work_dir if self.out_dir is None else self.out_dir
        if (self.file_client_args is None and self.backend_args is None
                and isinstance(get_file_backend(out_dir), LocalBackend)):
            self.backend_args = dict(ATOMIC_BACKEND_ARGS)
        elif self.backend_args != ATOMIC_BACKEND_ARGS:
            runner.logger.warning(
                f'{type(self).__name__}: checkpoints in {out_dir} are '
                'written by their storage backend, not atomically.')
        super().before_train(runner)
        if is_main_process():
            for folder in {runner.work_dir, str(self.out_dir)}:
                if isinstance(get_file_backend(folder), LocalBackend):
                    for path in remove_partial_files(folder):
                        runner.logger.info(
                            f'Removed {path}, left by an interrupted save.')

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        """``CheckpointHook._save_checkpoint_with_step`` with atomic writes,
        the outdated checkpoint deleted last, and the generator states."""
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        if self.save_rng_state:
            # every rank takes part; inside a validation, the states that
            # training continues from are the ones held in before_val
            states = self._states_before_val or get_rng_states()
            self._states_to_save = all_gather_object(states)
        try:
            # written by rank 0 only; before_save_checkpoint adds the states
            runner.save_checkpoint(
                self.out_dir,
                ckpt_filename,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
        finally:
            self._states_to_save = None

        if not is_main_process():
            return
        # the work dir is always local (MMEngine writes its logs there)
        atomic_write(osp.join(runner.work_dir, 'last_checkpoint'),
                     self.last_ckpt)
        if outdated is not None:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                # checkpoints saved by deepspeed are directories
                self.file_backend.rmtree(path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        """``CheckpointHook._save_best_checkpoint``, deleting each replaced
        best checkpoint last instead of first.

        MMEngine removes the file that ``best_ckpt_path`` (or
        ``best_ckpt_path_dict``) names before it saves the new best: with
        those cleared for the call it removes nothing, and the replaced
        files are removed here once the new best checkpoints and the
        ``iter_N.pth`` that names them are written.
        """
        if not self.save_best:
            return
        single = len(self.key_indicators) == 1
        previous = ({
            None: self.best_ckpt_path
        } if single else dict(self.best_ckpt_path_dict))
        if single:
            self.best_ckpt_path = None
        else:
            self.best_ckpt_path_dict = {key: None for key in previous}
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            # the keys whose best did not change keep their file; after an
            # error nothing is removed (the exception propagates)
            current = ({
                None: self.best_ckpt_path
            } if single else self.best_ckpt_path_dict)
            replaced = []
            for key, old in previous.items():
                if current.get(key) is None:
                    current[key] = old
                elif old and old != current[key]:
                    replaced.append(old)
            if single:
                self.best_ckpt_path = current[None]
        if not is_main_process():
            return
        for path in replaced:
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                # checkpoints saved by deepspeed are directories
                self.file_backend.rmtree(path)
            else:
                continue
            runner.logger.info(f'The previous best checkpoint {path} is '
                               'removed')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._states_to_save is not None:
            checkpoint[RNG_STATES_KEY] = self._states_to_save

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # resume and load_from both load; before_train_epoch tells them apart
        self._loaded = dict(
            iter=checkpoint.get('meta', {}).get('iter'),
            states=checkpoint.get(RNG_STATES_KEY))

    def before_train_epoch(self, runner) -> None:
        loaded, self._loaded = self._loaded, None
        # only a resumed run continues from the checkpoint's iteration
        # (load_from loads the weights and starts at iteration 0)
        if (loaded is None or not self.save_rng_state or runner.iter == 0
                or runner.iter != loaded['iter']):
            return
        rank, world_size = get_dist_info()
        states = loaded['states']
        if states is None or len(states) != world_size:
            held = ('no random generator states' if states is None else
                    f'the random generator states of {len(states)} '
                    f'processes, this run has {world_size}')
            runner.logger.warning(
                f'The checkpoint holds {held}: the run resumes, but its '
                'random draws differ from those of an uninterrupted run.')
            return
        loop = runner.train_loop
        if hasattr(loop, 'dataloader_iterator'):
            # IterBasedTrainLoop advances the iterator by runner.iter
            # batches after this hook; restore once that is done
            loop.dataloader_iterator = _RestoreRNGBeforeBatch(
                loop, loop.dataloader_iterator, runner.iter, states[rank],
                runner.logger)
        else:
            # an epoch-based loop draws its first batch after this hook
            set_rng_states(states[rank])
            runner.logger.info('Restored the random generator states saved '
                               'with the checkpoint.')

    def before_val(self, runner) -> None:
        if self.save_rng_state:
            self._states_before_val = get_rng_states()

    def after_val(self, runner) -> None:
        if self._states_before_val is not None:
            set_rng_states(self._states_before_val)
            self._states_before_val = None
