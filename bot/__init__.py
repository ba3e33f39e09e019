"""The Official Account bot: the WeChat callback (`/wechat`) and the chat flows of supplier staff."""
