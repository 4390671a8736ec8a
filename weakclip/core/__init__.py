"""The plumbing every package of the suite shares (weakclip, baselines and bench import it; it imports none of them).

    io           atomic writes (a file appears whole or not at all), palette PNG masks, images, JSON
    crf          the dense CRF (pydensecrf) and its published presets; crf_exact: the same model computed exactly
    optim        fused AdamW;  schedule: the learning-rate schedules (warm-up + cosine, poly)
    resize       bilinear resizing as matrix products (a fast backward)
    precision    which precision a device computes natively, and the autocast that follows from it
    distributed  DDP set-up, the seeded infinite sampler and per-sample seeding (exact resume)
"""
