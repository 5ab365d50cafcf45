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


def test_init_from_teacher_maps_layers_and_keeps_the_rest_random():
    from bortkit.checkpoint import named_parameters
    from bortkit.config import ModelConfig
    from bortkit.distill import build_masked_lm
    small = dict(vocab_size=50, max_length=16, type_vocab_size=0, use_pooler=False)
    teacher = build_masked_lm(ModelConfig(num_layers=4, num_heads=2, units=8, ffn_units=12,
                                          **small))
    tensors = {k: p.data().asnumpy() for k, p in named_parameters(teacher).items()}
    student = named_parameters(build_masked_lm(ModelConfig(num_layers=2, num_heads=2, units=12,
                                                           ffn_units=8, **small)))
    before = {k: p.data().asnumpy() for k, p in student.items()}
    counts = init_from_teacher(student, tensors)
    after = {k: p.data().asnumpy() for k, p in student.items()}
    # layer 0 <- teacher layer 1, layer 1 <- teacher layer 3; FFN cut, width padded
    for mine, theirs in (("encoder.0", "encoder.1"), ("encoder.1", "encoder.3")):
        q = f"{mine}.attention.query.weight"                      # (12, 12) <- (8, 8)
        assert np.array_equal(after[q][:8, :8], tensors[f"{theirs}.attention.query.weight"])
        assert np.array_equal(after[q][8:], before[q][8:])       # the rest stays random
        ffn = f"{mine}.ffn.ffn_1.weight"                          # (8, 12) <- (12, 8)
        assert np.array_equal(after[ffn][:, :8], tensors[f"{theirs}.ffn.ffn_1.weight"][:8])
    word = "embeddings.word_embed.weight"                          # (50, 12) <- (50, 8)
    assert np.array_equal(after[word][:, :8], tensors[word])
    assert counts["random"] == 0 and counts["whole"] > 0 and counts["part"] > 0
    assert sum(counts.values()) == len(student)

