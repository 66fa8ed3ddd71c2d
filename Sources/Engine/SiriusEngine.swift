/// An inference engine for the CPU (Llama, Gemma 3, Qwen2 and Mistral; GGUF and safetensors weights).
public enum SiriusEngine {}
