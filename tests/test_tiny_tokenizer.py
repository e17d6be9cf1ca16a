"""The tokenizer writer: every grammar word is one token, unknown words split into pieces, padding to 77."""
from transformers import CLIPTokenizer

from sdlab.tiny.config import WORDS
from sdlab.tiny.tokenizer import write_tokenizer_folder


def test_grammar_words_are_one_token_unknown_words_split_padding_77(tmp_path):
    tok = CLIPTokenizer.from_pretrained(write_tokenizer_folder(WORDS, tmp_path))
    for word in WORDS:
        ids = tok(word).input_ids
        assert len(ids) == 3 and ids[1] != tok.eos_token_id, (word, tok.tokenize(word))
    assert len(tok("zebra").input_ids) > 3 and tok.eos_token_id not in tok("zebra").input_ids[1:-1]
    ids = tok("a green triangle at the bottom", padding="max_length").input_ids
    assert len(ids) == 77 and ids[0] == tok.bos_token_id and set(ids[7:]) == {tok.eos_token_id}


def test_training_writes_the_shipped_tokenizer_byte_for_byte(tmp_path):
    from sdlab.tiny import MODEL_DIR

    written = write_tokenizer_folder(WORDS, tmp_path)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        assert (written / name).read_bytes() == (MODEL_DIR / "tokenizer" / name).read_bytes(), name
