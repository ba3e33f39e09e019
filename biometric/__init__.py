"""Face enrollment and verification (PIPL-conscious): consent, encrypted 128-d templates, head-turn liveness,
one-time signing tickets, and WeChat's own 人脸核身 as an alternative provider.

pipeline (pure image work in worker processes) · pool (the process pool) · liveness · tickets · lockout ·
consent / enrollment / verification (use cases) · wechat_face (provider) · api (routes) · config (settings).
"""
