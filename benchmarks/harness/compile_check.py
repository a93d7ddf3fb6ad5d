"""``torch.compile`` checks: graph breaks, and compiled gradients against
eager ones."""
import torch


def graph_breaks(fn, *args, **kwargs):
    """Runs ``torch._dynamo.explain`` on ``fn(*args, **kwargs)``.

    Returns:
        dict: ``graphs`` (number of graphs), ``breaks`` (number of graph
        breaks) and ``reasons`` (one line per break: the reason and the
        innermost user frame).
    """
    import torch._dynamo as dynamo
    dynamo.reset()
    explanation = dynamo.explain(fn)(*args, **kwargs)
    reasons = []
    for reason in explanation.break_reasons:
        where = ''
        stack = getattr(reason, 'user_stack', None) or []
        if stack:
            frame = stack[-1]
            where = f' at {frame.filename}:{frame.lineno} ({frame.name})'
        text = str(reason.reason).strip().splitlines()[0]
        reasons.append(text + where)
    return dict(graphs=explanation.graph_count,
                breaks=explanation.graph_break_count, reasons=reasons)


def eager_and_compiled_gradients(module, inputs, backend='inductor'):
    """Gradients of ``sum(module(*inputs) ** 2)``, eager and compiled.

    Runs the forward and backward pass in train mode on two deep copies of
    ``module`` (so that a running statistic updated by one run cannot
    change the other), one as it is and one through ``torch.compile`` with
    ``backend``, each from fresh leaf copies of ``inputs``. Dynamo's
    caches are reset afterwards.

    Returns:
        tuple: ``(names, eager, compiled)``: the names of the gradients
        (``input.0``, ... then the parameters' names) and two lists of
        gradient tensors in that order (``None`` where a tensor got none).
    """
    import copy

    import torch._dynamo as dynamo
    names = [f'input.{i}' for i in range(len(inputs))]
    names += [name for name, _ in module.named_parameters()]
    results = []
    for compiled in (False, True):
        mod = copy.deepcopy(module).train()
        leaves = [t.detach().clone().requires_grad_() for t in inputs]
        fn = torch.compile(mod, backend=backend) if compiled else mod
        fn(*leaves).float().square().sum().backward()
        results.append([t.grad for t in leaves] +
                       [p.grad for p in mod.parameters()])
    dynamo.reset()
    return names, results[0], results[1]


def compiled_gradient_error(module, inputs, backend='inductor'):
    """How far ``torch.compile``'s gradients of ``module`` are from eager.

    The error of one gradient is ``max|compiled - eager| / max|eager|``;
    a gradient missing on one side only counts as 1. TF32 is off during
    the runs, so that on a GPU both sides run full fp32 convolutions.

    Returns:
        dict: ``max_rel_error`` (the largest error over the inputs' and
        parameters' gradients), ``worst`` (its gradient's name) and
        ``wrong_fraction`` (the fraction of that gradient's elements off
        by more than 1e-3 of its largest magnitude).
    """
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        names, eager, compiled = eager_and_compiled_gradients(
            module, inputs, backend)
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved
    worst = dict(max_rel_error=0.0, worst=None, wrong_fraction=0.0)
    for name, e, c in zip(names, eager, compiled):
        if e is None and c is None:
            continue
        if e is None or c is None:
            error, wrong = 1.0, 1.0
        else:
            e, c = e.detach().double(), c.detach().double()
            scale = e.abs().max().clamp_min(1e-30)
            diff = (c - e).abs()
            error = (diff.max() / scale).item()
            wrong = (diff > 1e-3 * scale).double().mean().item()
        if error > worst['max_rel_error'] or worst['worst'] is None:
            worst = dict(max_rel_error=error, worst=name,
                         wrong_fraction=wrong)
    return worst
