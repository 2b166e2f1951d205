"""`rag bench`: how fast this machine runs the pipeline, and how it holds up at scale and under load.

- pipeline: the default run, sized by config: roofline and embedding (hardware), index build, query
  latency, vector and keyword search at scale (search); tables and plot (report)
- store (`--store`): the search backends side by side
- ingest (`--ingest`): OCR and table reading
- load (`--load`): many clients against a real `rag chat`
- common: what they share: the results folder ($RAG_HOME/reports/bench unless --out), the machine and
  its load, the gold questions, markdown tables
"""
