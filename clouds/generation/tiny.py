"""A tiny random-init Stable Diffusion pipeline, saved like a real one (quickstart, tests).

``StableDiffusionPipeline.from_pretrained`` loads the saved folder through the same code path
as a downloaded model (``generate_txt_im.py --model-id FOLDER --local-files-only``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

__all__ = ["save_tiny_sd_pipeline"]


def _character_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer over printable ASCII characters (no BPE merges, no download)."""
    chars = [chr(c) for c in range(33, 127)]
    vocab = {token: i for i, token in enumerate(chars + [c + "</w>" for c in chars])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def save_tiny_sd_pipeline(folder: str | Path, *, seed: int = 0) -> Path:
    """Save a random Stable Diffusion pipeline with a few channels per layer to ``folder``.

    UNet and VAE have 2 levels of 8 and 16 channels (latents 4 x H/2 x W/2), the text encoder
    is a 2-layer CLIP of width 16, the scheduler DDIM (the generation CLI can swap it).

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = _character_tokenizer()
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=4,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_attention_heads=2,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder
