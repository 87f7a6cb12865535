namespace OnnxReward.Cli.Serving;

/// <summary>
/// The service's OpenAPI 3.1 document, served at <c>GET /openapi.json</c>. Hand-written (Microsoft.AspNetCore.OpenApi is
/// not on this environment's NuGet mirror); the serving tests check every route the server maps appears here.
/// </summary>
internal static class OpenApiDocument
{
    public const string Json = """
{
  "openapi": "3.1.0",
  "info": {
    "title": "onnxreward serve",
    "version": "1.0.0",
    "description": "Reward-model scoring over HTTP with dynamic batching across concurrent requests. Errors are {\"error\": {\"message\", \"status\", \"index\"?}}: 400 invalid input (the library's message), 401 missing/wrong API key (when the server has one), 413 body or item count over the limits, 503 queue full or model loading (with Retry-After)."
  },
  "components": {
    "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
    "schemas": {
      "Message": { "type": "object", "required": ["role", "content"], "properties": { "role": { "type": "string" }, "content": { "type": "string" } } },
      "Input": {
        "description": "Exactly one form of input.",
        "oneOf": [
          { "type": "object", "required": ["messages"], "properties": { "messages": { "type": "array", "items": { "$ref": "#/components/schemas/Message" } } } },
          { "type": "object", "required": ["prompt", "response"], "properties": { "prompt": { "type": "string", "description": "A user prompt or an hh-rlhf transcript." }, "response": { "type": "string" } } },
          { "type": "object", "required": ["text"], "properties": { "text": { "type": "string", "description": "Already templated text; special tokens are recognised, no BOS is added." } } },
          { "type": "object", "required": ["input_ids"], "properties": { "input_ids": { "type": "array", "items": { "type": "integer", "minimum": 0 } } } }
        ]
      },
      "Score": {
        "type": "object",
        "required": ["score", "tokens"],
        "description": "An ArmoRM model's result has objectives and gating; a sequence classifier's has logits instead.",
        "properties": {
          "score": { "type": "number" },
          "score_std": { "type": "number", "description": "Present when the model has a posterior." },
          "objectives": { "type": "object", "additionalProperties": { "type": "number" }, "description": "Objective rewards in the model's fixed order (ArmoRM)." },
          "gating": { "type": "object", "additionalProperties": { "type": "number" }, "description": "Gating weights (ArmoRM)." },
          "logits": { "type": "array", "items": { "type": "number" }, "description": "The score head's logits (sequence classifier; the score is logits[0])." },
          "tokens": { "type": "integer" }
        }
      },
      "Error": { "type": "object", "properties": { "error": { "type": "object", "properties": { "message": { "type": "string" }, "status": { "type": "integer" }, "index": { "type": "integer" } } } } }
    }
  },
  "security": [{ "bearer": [] }],
  "paths": {
    "/v1/score": {
      "post": {
        "summary": "Score conversations; results in input order.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["conversations"], "properties": { "conversations": { "type": "array", "items": { "$ref": "#/components/schemas/Input" } } } } } } },
        "responses": {
          "200": { "description": "Scores.", "content": { "application/json": { "schema": { "type": "object", "properties": { "results": { "type": "array", "items": { "$ref": "#/components/schemas/Score" } } } } } } },
          "400": { "description": "Malformed JSON, invalid UTF-8, a lone surrogate or an invalid conversation.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
          "401": { "description": "Missing or wrong API key." },
          "408": { "description": "The body did not arrive within --request-timeout-s (or below Kestrel's minimum data rate)." },
          "413": { "description": "Body or conversation count over the limit." },
          "422": { "description": "The model produced NaN or infinity for the item named by error.index." },
          "503": { "description": "Queue full, model loading, or the work did not finish within --request-timeout-s; see Retry-After." }
        }
      }
    },
    "/v1/bon": {
      "post": {
        "summary": "Best-of-n selection, as the `bon` command.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["prompt", "candidates"], "properties": {
          "prompt": { "type": "string" }, "candidates": { "type": "array", "items": { "type": "string" } },
          "reference_rewards": { "type": "array", "items": { "type": "number" } }, "reference_responses": { "type": "array", "items": { "type": "string" } },
          "rule": { "enum": ["score", "lsc-and", "mean-minus-k-std", "mean-minus-k-var"] }, "k": { "type": "number" },
          "objectives": { "type": "array", "items": { "type": "string" } }, "quantile": { "type": "number" }, "reference": { "enum": ["normal", "empirical"] } } } } } },
        "responses": {
          "200": { "description": "The choice.", "content": { "application/json": { "schema": { "type": "object", "properties": {
            "chosen": { "type": "integer" }, "rule": { "type": "string" }, "scores": { "type": "array", "items": { "type": "number" } },
            "transformed": { "type": "array", "items": { "type": "number" } }, "score_std": { "type": "array", "items": { "type": "number" } },
            "reference_reward": { "type": "number" } } } } } },
          "400": { "description": "Invalid request." }, "401": { "description": "Missing or wrong API key." }, "408": { "description": "Body too slow." }, "413": { "description": "Too many candidates." }, "422": { "description": "NaN/infinite model output." }, "503": { "description": "Busy, loading, or past --request-timeout-s." }
        }
      }
    },
    "/get_reward": {
      "post": {
        "summary": "OpenRLHF remote reward model: templated texts in, one reward each.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["query"], "properties": {
          "query": { "type": "array", "items": { "type": "string" } }, "prompts": { "type": "array", "description": "Accepted and ignored." }, "labels": { "type": "array", "description": "Accepted and ignored." } } } } } },
        "responses": {
          "200": { "description": "Rewards.", "content": { "application/json": { "schema": { "type": "object", "properties": { "rewards": { "type": "array", "items": { "type": "number" } }, "scores": { "type": "array", "items": { "type": "number" } } } } } } },
          "400": { "description": "Invalid request." }, "401": { "description": "Missing or wrong API key." }, "408": { "description": "Body too slow." }, "413": { "description": "Too large." }, "422": { "description": "NaN/infinite model output." }, "503": { "description": "Busy, loading, or past --request-timeout-s." }
        }
      }
    },
    "/v1/classify": {
      "post": {
        "summary": "vLLM/SGLang classification shape; probs holds the raw score.",
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "properties": {
          "model": { "type": "string" }, "input": { "oneOf": [ { "type": "string" }, { "type": "array", "items": { "type": "string" } }, { "type": "array", "items": { "type": "integer" } } ] },
          "messages": { "type": "array", "items": { "$ref": "#/components/schemas/Message" } } } } } } },
        "responses": {
          "200": { "description": "One entry per input.", "content": { "application/json": { "schema": { "type": "object", "properties": {
            "id": { "type": "string" }, "object": { "const": "list" }, "created": { "type": "integer" }, "model": { "type": "string" },
            "data": { "type": "array", "items": { "type": "object", "properties": { "index": { "type": "integer" }, "label": { "type": "string" }, "probs": { "type": "array", "items": { "type": "number" } }, "num_classes": { "type": "integer" } } } },
            "usage": { "type": "object", "properties": { "prompt_tokens": { "type": "integer" }, "total_tokens": { "type": "integer" }, "completion_tokens": { "type": "integer" } } } } } } } },
          "400": { "description": "Invalid request." }, "401": { "description": "Missing or wrong API key." }, "408": { "description": "Body too slow." }, "413": { "description": "Too large." }, "422": { "description": "NaN/infinite model output." }, "503": { "description": "Busy, loading, or past --request-timeout-s." }
        }
      }
    },
    "/classify": { "post": { "summary": "Alias of /v1/classify (vLLM's path).", "responses": { "200": { "description": "As /v1/classify." } } } },
    "/health": {
      "get": {
        "summary": "200 once the model is loaded, 503 before (or after a failed load). Needs no API key.",
        "security": [],
        "responses": { "200": { "description": "Ready." }, "503": { "description": "Loading or failed." } }
      }
    },
    "/metrics": { "get": { "summary": "Prometheus text: requests, latency histogram, rows, tokens, batch sizes, queue depth.", "responses": { "200": { "description": "text/plain; version=0.0.4", "content": { "text/plain": {} } } } } },
    "/openapi.json": { "get": { "summary": "This document.", "security": [], "responses": { "200": { "description": "OpenAPI 3.1." } } } }
  }
}
""";
}
