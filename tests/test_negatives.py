"""Negative sources (``kws.data.negatives``): which files are whose, and which side of the split."""

from kws.data.negatives import negative_files, speaker_of


def test_negative_speakers_stay_on_one_side_in_either_layout(tmp_path):
    # LibriSpeech names the reader in the file; speechocean762 gives each speaker a folder.
    flat, nested = tmp_path / "flat", tmp_path / "nested"
    for reader in range(40):
        for utt in range(3):
            (flat / f"{reader}-1-{utt}.flac").parent.mkdir(parents=True, exist_ok=True)
            (flat / f"{reader}-1-{utt}.flac").write_bytes(b"")
            (nested / "train" / f"{reader:04d}" / f"{reader:04d}{utt}.flac").parent.mkdir(parents=True, exist_ok=True)
            (nested / "train" / f"{reader:04d}" / f"{reader:04d}{utt}.flac").write_bytes(b"")
    assert speaker_of(flat / "12-1-0.flac", flat) == "12"
    assert speaker_of(nested / "train" / "0012" / "00120.flac", nested) == "0012"
    for root in (flat, nested):
        sides = {split: {speaker_of(p, root) for p in negative_files(root, split, 0.5)}
                 for split in ("training", "validation", "testing")}
        assert all(sides.values())  # 40 speakers: each side gets some
        assert sum(map(len, sides.values())) == 40  # and no speaker is on two sides
