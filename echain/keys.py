"""Typed application keys: every shared service the handlers reach through `request.app`."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from echain.settings import Settings
from wechat.client import WeChatClient
from wechat.simulator import SimulatorState
from workflow.deps import Deps

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
HTTP = web.AppKey("http", aiohttp.ClientSession)
SIMULATOR = web.AppKey("simulator", SimulatorState)  # set only when the in-process simulator runs
WECHAT_BASE = web.AppKey("wechat_base", str)  # the WeChat API base actually in use
DEPS = web.AppKey("deps", Deps)
OA_WECHAT = web.AppKey("oa_wechat", WeChatClient)
LIVE_STREAMS = web.AppKey("live_streams", set)  # the tasks serving open event streams (closed on shutdown)  # the Official Account's API client (bot, OA messages)
