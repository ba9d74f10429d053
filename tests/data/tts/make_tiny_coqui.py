"""Write a tiny, randomly initialised Coqui TTS model: a stand-in for a real checkpoint.

No weights can be downloaded where the tests run, so the tests and the benchmark build a model
with the same files a trained one has (a ``config.json`` and a checkpoint holding
``{"model": state_dict}``) and run it through exactly the loading and inference code a real
model takes. Its output is noise of the right shape and rate.

Run with the Coqui environment's python:

    .venv/tts-coqui/bin/python tests/data/tts/make_tiny_coqui.py OUT_DIR [--speakers a,b]

writes OUT_DIR/model.pth and OUT_DIR/config.json (VITS, Graphemes tokenizer, hidden 32, 1 layer).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# The repository root, for services.common (the XTTS reference recording). Mounted alone into an image
# (/scripts/make_tiny_coqui.py, the Coqui image's test) there is none, and only the VITS is made.
_HERE = Path(__file__).resolve()
if len(_HERE.parents) > 3:
    sys.path.insert(0, str(_HERE.parents[3]))


def tiny_vits(out: Path, speakers: list[str], sample_rate: int = 16000, seed: int = 0) -> None:
    import torch
    from TTS.config.shared_configs import BaseAudioConfig
    from TTS.tts.configs.shared_configs import CharactersConfig
    from TTS.tts.configs.vits_config import VitsArgs, VitsConfig
    from TTS.tts.models.vits import Vits

    torch.manual_seed(seed)
    args = VitsArgs(
        hidden_channels=32, hidden_channels_ffn_text_encoder=64, num_heads_text_encoder=2,
        num_layers_text_encoder=1, num_layers_posterior_encoder=1, num_layers_flow=1,
        kernel_size_flow=3, kernel_size_posterior_encoder=3,
        resblock_kernel_sizes_decoder=[3], resblock_dilation_sizes_decoder=[[1, 3, 5]],
        upsample_rates_decoder=[8, 8, 4], upsample_kernel_sizes_decoder=[16, 16, 8],
        upsample_initial_channel_decoder=32, periods_multi_period_discriminator=[2],
        init_discriminator=False, use_sdp=False,
        use_speaker_embedding=len(speakers) > 1, speaker_embedding_channels=16,
    )
    config = VitsConfig(
        model_args=args,
        audio=BaseAudioConfig(sample_rate=sample_rate, hop_length=256, win_length=1024, fft_size=1024,
                              num_mels=80, mel_fmin=0, mel_fmax=None),
        use_phonemes=False,
        text_cleaner="multilingual_cleaners",
        characters=CharactersConfig(
            characters_class="TTS.tts.utils.text.characters.Graphemes",
            pad="<PAD>", eos="<EOS>", bos="<BOS>", blank="<BLNK>",
            characters="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
            punctuations="!'(),-.:;? ", phonemes=None, is_unique=True, is_sorted=True,
        ),
        add_blank=True,
        speakers=speakers if len(speakers) > 1 else None,
        test_sentences=[],
    )
    out.mkdir(parents=True, exist_ok=True)
    model = Vits(config)
    model.eval()
    torch.save({"model": model.state_dict()}, out / "model.pth")
    config.save_json(str(out / "config.json"))


def tiny_xtts(out: Path, seed: int = 0) -> None:
    """A tiny random XTTS directory: config.json, model.pth, vocab.json and voices/ref.wav.

    XTTS streams (``inference_stream``); its GPT is cut to 1 layer of 64 channels and a few
    audio tokens, but its HiFi-GAN decoder and speaker encoder keep their fixed sizes.
    """
    import numpy as np
    import torch
    from tokenizers import Tokenizer, models
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer
    from TTS.tts.models.xtts import Xtts, XttsArgs, XttsAudioConfig

    from services.common.audio import write_wav

    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    # A character-level BPE vocabulary with the special tokens XTTS's tokenizer uses.
    specials = ["[STOP]", "[UNK]", "[SPACE]", "[START]", "[en]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789!'(),-.:;?\"")
    vocab = {tok: i for i, tok in enumerate(specials + chars)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="[UNK]"))
    tokenizer.add_special_tokens(specials)
    tokenizer.save(str(out / "vocab.json"))
    args = XttsArgs(
        gpt_layers=1, gpt_n_model_channels=64, gpt_n_heads=2, gpt_max_audio_tokens=48, gpt_max_text_tokens=256,
        gpt_max_prompt_tokens=16, gpt_num_audio_tokens=34, gpt_start_audio_token=32, gpt_stop_audio_token=33,
        decoder_input_dim=64, tokenizer_file=str(out / "vocab.json"),
    )
    config = XttsConfig(model_args=args, audio=XttsAudioConfig(), languages=["en"], gpt_cond_len=3,
                        gpt_cond_chunk_len=3, max_ref_len=3)
    model = Xtts(config)
    model.tokenizer = VoiceBpeTokenizer(str(out / "vocab.json"))
    model.init_models()
    torch.save({"model": model.state_dict()}, out / "model.pth")
    config.save_json(str(out / "config.json"))
    # A reference recording for voice cloning: 3 s of a gliding tone with noise.
    t = np.arange(3 * 22050) / 22050
    ref = 0.3 * np.sin(2 * np.pi * (150 + 40 * t) * t) + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    (out / "voices").mkdir(exist_ok=True)
    (out / "voices" / "ref.wav").write_bytes(write_wav(ref.astype(np.float32), 22050))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--speakers", default="", help="comma-separated speaker names: a multi-speaker model")
    ap.add_argument("--sample-rate", type=int, default=16000)
    ap.add_argument("--xtts", action="store_true", help="a tiny XTTS directory instead of a VITS")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.xtts:
        tiny_xtts(args.out)
        kind = "XTTS"
    else:
        speakers = [s for s in args.speakers.split(",") if s]
        tiny_vits(args.out, speakers, args.sample_rate)
        kind = f"VITS ({len(speakers) or 1} speaker(s))"
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"tiny {kind} in {args.out}: {size / 1e6:.2f} MB, {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
