"""OpenAI wire types, one module per API, as msgspec Structs."""
