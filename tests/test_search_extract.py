"""Sub-network extraction (``--init teacher``): which teacher layer and block each candidate
tensor starts from."""
import numpy as np
import pytest

from bortkit.search.extract import init_from_teacher, layer_map, overlap


@pytest.mark.parametrize("depth, expected", [
    (1, [5]), (2, [2, 5]), (3, [1, 3, 5]), (4, [1, 2, 4, 5]), (6, [0, 1, 2, 3, 4, 5]),
    (8, [0, 0, 1, 2, 3, 3, 4, 5]), (12, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5])])
def test_layer_map_spreads_over_the_teacher_and_ends_at_its_last_layer(depth, expected):
    assert layer_map(depth, 6) == expected


def test_layer_map_is_ordered_and_uses_every_teacher_layer_when_deeper():
    for teacher_depth in range(1, 9):
        for depth in range(1, 20):
            layers = layer_map(depth, teacher_depth)
            assert layers == sorted(layers) and layers[-1] == teacher_depth - 1
            assert len(set(layers)) == min(depth, teacher_depth)
    with pytest.raises(ValueError, match="depths must be >= 1"):
        layer_map(0, 6)


def test_overlap_copies_the_leading_block_only():
    target, source = np.zeros((3, 5)), np.arange(8.0).reshape(2, 4) + 1
    out = overlap(target, source)
    assert (out[:2, :4] == source).all() and (out[2:] == 0).all() and (out[:, 4:] == 0).all()
    assert (target == 0).all()   # not written in place
    assert (overlap(np.zeros(2), np.arange(4.0)) == [0, 1]).all()   # a larger source is cut


SMALL = dict(vocab_size=50, max_length=16, type_vocab_size=0, use_pooler=False,
             dropout=0.0, attention_dropout=0.0)


def _model(layers, heads, units, ffn_units, seed=0):
    import mxnet as mx

    from bortkit.checkpoint import named_parameters
    from bortkit.config import ModelConfig
    from bortkit.distill import build_masked_lm
    mx.random.seed(seed)
    model = build_masked_lm(ModelConfig(num_layers=layers, num_heads=heads, units=units,
                                        ffn_units=ffn_units, **SMALL))
    return model, named_parameters(model)


def _log_probs(model):
    import mxnet as mx
    rng = np.random.RandomState(1)
    ids = mx.nd.array(rng.randint(0, 50, size=(3, 16)))
    mask = mx.nd.ones((3, 16))
    positions = mx.nd.array(np.tile(np.arange(0, 16, 3), (3, 1)))
    out = model(ids, mx.nd.zeros((3, 16)), mask, positions)
    out = out[0] if isinstance(out, tuple) else out
    return mx.nd.log_softmax(out, axis=-1).asnumpy()


def _teacher():
    teacher, params = _model(2, 2, 8, 12, seed=1)
    return teacher, {k: p.data().asnumpy() for k, p in params.items()}


def test_a_candidate_at_least_the_teachers_size_computes_its_outputs():
    teacher, tensors = _teacher()
    expected = _log_probs(teacher)
    # wider FFN, same width: exact
    student, params = _model(2, 2, 8, 20)
    counts = init_from_teacher(params, tensors, heads=(2, 2))
    assert np.allclose(_log_probs(student), expected, atol=1e-5)
    assert counts["random"] == 0 and counts["part"] > 0
    # wider model (12 = 3 heads of the teacher's 4 dims), more heads and FFN units: the
    # teacher's function up to LayerNorm's mean over the zero dimensions
    student, params = _model(2, 3, 12, 16)
    init_from_teacher(params, tensors, heads=(3, 2))
    got = _log_probs(student)
    kl = (np.exp(expected) * (expected - got)).sum(-1).mean()
    assert kl < 1e-3, kl
    # the old extraction (leading blocks, the rest random) is far from it
    student, params = _model(2, 3, 12, 16)
    init_from_teacher(params, tensors)
    old = (np.exp(expected) * (expected - _log_probs(student))).sum(-1).mean()
    assert old > 10 * kl, (old, kl)


def test_a_smaller_candidate_keeps_the_largest_heads_and_units():
    teacher, tensors = _teacher()
    out = tensors["encoder.1.attention.output.weight"]          # (8, 8): columns 4..7 = head 1
    out[:, 4:] *= 10
    w2 = tensors["encoder.1.ffn.ffn_2.weight"]                 # (8, 12): unit 7 the largest
    w2[:, 7] *= 10
    student, params = _model(2, 1, 8, 1)
    init_from_teacher(params, tensors, heads=(1, 2))
    got = {k: p.data().asnumpy() for k, p in params.items()}
    query = tensors["encoder.1.attention.query.weight"][4:]    # head 1, scaled by sqrt(8 / 4)
    assert np.allclose(got["encoder.1.attention.query.weight"][:4], query * np.sqrt(2))
    assert (got["encoder.1.attention.query.weight"][4:] == 0).all()   # no score term of its own
    assert np.array_equal(got["encoder.1.attention.key.weight"][:4],
                          tensors["encoder.1.attention.key.weight"][4:])
    assert np.array_equal(got["encoder.1.attention.output.weight"][:, :4], out[:, 4:])
    assert (got["encoder.1.attention.output.weight"][:, 4:] == 0).all()
    assert np.array_equal(got["encoder.1.ffn.ffn_2.weight"][:, 0], w2[:, 7])
    assert np.array_equal(got["encoder.1.ffn.ffn_1.weight"][0],
                          tensors["encoder.1.ffn.ffn_1.weight"][7])


def test_init_from_teacher_maps_layers():
    teacher, tensors = _model(4, 2, 8, 12, seed=1)
    tensors = {k: p.data().asnumpy() for k, p in tensors.items()}
    student, params = _model(2, 2, 8, 12)
    counts = init_from_teacher(params, tensors, heads=(2, 2))
    got = {k: p.data().asnumpy() for k, p in params.items()}
    # layer 0 <- teacher layer 1, layer 1 <- teacher layer 3
    for mine, theirs in (("encoder.0", "encoder.1"), ("encoder.1", "encoder.3")):
        assert np.array_equal(got[f"{mine}.attention.key.weight"],
                              tensors[f"{theirs}.attention.key.weight"])
    assert counts == {"whole": len(params), "part": 0, "random": 0}
