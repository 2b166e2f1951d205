"""The chat page (`rag chat`): a Gradio app over the pipeline.

Tabs: 对话 (answers with clickable [n] citations and a sources panel; an LLM's answer streamed), 知识库 (list, upload,
delete, rebuild), 评测 (the gold-set evaluation). The answer function is also the `/ask` API, and the
knowledge base's list, upload and delete are `/documents`, `/add_document` and `/delete_document`.

Modules: `state` (what the handlers share), `api`, `chat`, `history` (the browser's conversations),
`kb_tab`, `eval_tab` (each tab's handlers), `render` (escaping and HTML), `session` (turns), `uploads`
(Gradio's upload folder), `layout` (the Blocks and `serve`).
"""

from rag.app.layout import serve

__all__ = ["serve"]
