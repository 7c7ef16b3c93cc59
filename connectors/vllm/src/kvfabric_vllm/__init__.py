"""kvfabric's KV connector for vLLM: `kv_connector_module_path: kvfabric_vllm.connector`, class KvfabricConnector."""

__version__ = "0.1.0"
