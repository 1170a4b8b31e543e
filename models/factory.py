"""Build a model from its JSON-able config, the one place that knows every kind.

    config = {"model": "transformer" | "gru" | "lstm", "attention": ..., sizes ...}
    model = build_model(config, src_vocab, tgt_vocab)
"""
from models.seq2seq import ATTENTIONS, RNNSeq2Seq
from models.transformer import TransformerSeq2Seq

__all__ = ["MODEL_KINDS", "build_model"]

MODEL_KINDS = ("transformer", "gru", "lstm")


def build_model(config, src_vocab, tgt_vocab, pad_id=0):
    kind = config["model"]
    if kind == "transformer":
        return TransformerSeq2Seq(
            src_vocab, tgt_vocab, d_model=config["d_model"], nhead=config["heads"],
            num_encoder_layers=config["layers"], num_decoder_layers=config["layers"],
            dim_feedforward=config["ff"], dropout=config["dropout"], norm_first=config["pre_norm"],
            tie_embeddings=config["tie_embeddings"], pad_id=pad_id, max_len=config["max_positions"])
    if kind in ("gru", "lstm"):
        if config["attention"] not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {config['attention']!r}")
        return RNNSeq2Seq(
            src_vocab, tgt_vocab, embed_dim=config["embed_dim"], hidden_size=config["hidden"],
            num_layers=config["layers"], cell=kind, attention=config["attention"],
            bidirectional=config["bidirectional"], dropout=config["dropout"],
            teacher_forcing=config["teacher_forcing"],
            input_feeding=not config.get("no_input_feeding", False), pad_id=pad_id)
    raise ValueError(f"model must be one of {MODEL_KINDS}, got {kind!r}")
