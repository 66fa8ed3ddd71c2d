/// A Llama-family inference engine for the CPU (GGUF and safetensors weights).
public enum SiriusEngine {}
