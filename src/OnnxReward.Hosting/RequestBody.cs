using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using OnnxReward.Wire;

namespace OnnxReward.Hosting;

/// <summary>An HTTP answer other than 200: status, the detail (the library's own message where it has one), the failing item.</summary>
internal sealed class HttpProblem(int status, string detail, int? index = null) : Exception(detail)
{
    public int Status { get; } = status;
    public int? Index { get; } = index;
}

/// <summary>
/// Reads a request body the strict way: at most <c>MaxBodyBytes</c> bytes whether or not it has a Content-Length
/// (a chunked body is read to the limit + 1 byte, never more), under the request's deadline, then
/// <see cref="StrictJson"/> (valid UTF-8, never replaced by U+FFFD; well-formed JSON; no lone surrogate escapes), then
/// the typed request record. The framework's own body binding is not used because it could do none of that with
/// these messages.
/// </summary>
internal static class RequestBody
{
    public static async Task<JsonDocument> ReadJsonAsync(HttpContext ctx, long max, CancellationToken cancellationToken)
    {
        string TooLarge(string size) =>
            $"the request body is {size}, over the limit of {max} bytes (--max-body-bytes): send fewer conversations per request.";
        if (ctx.Request.ContentLength is { } length && length > max)
            throw new HttpProblem(StatusCodes.Status413PayloadTooLarge, TooLarge($"{length} bytes"));
        if (ctx.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
            limit.MaxRequestBodySize = max;

        var buffer = new ArrayBufferWriter<byte>(4096);
        try
        {
            while (true)
            {
                var memory = buffer.GetMemory(8192);
                var read = await ctx.Request.Body.ReadAsync(memory, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                    break;
                buffer.Advance(read);
                if (buffer.WrittenCount > max)
                    throw new HttpProblem(StatusCodes.Status413PayloadTooLarge, TooLarge("larger"));
            }
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            throw new HttpProblem(StatusCodes.Status413PayloadTooLarge, TooLarge("larger"));
        }
        if (buffer.WrittenCount == 0)
            throw new HttpProblem(StatusCodes.Status400BadRequest, "the request body is empty: send a JSON object (see GET /openapi/v1.json).");
        try
        {
            return StrictJson.Parse(buffer.WrittenMemory);
        }
        catch (FormatException e)
        {
            throw new HttpProblem(StatusCodes.Status400BadRequest, e.Message.StartsWith("invalid JSON", StringComparison.Ordinal)
                ? $"the request body is not valid JSON: {e.Message}" : $"the request body has {e.Message}");
        }
    }

    /// <summary>The typed request; a body of another shape is a FormatException naming where it differs and the shape.</summary>
    public static T Deserialize<T>(JsonDocument body, JsonTypeInfo<T> type, string shape) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize(body, type) ?? throw new FormatException($"the request body is null: {shape}.");
        }
        catch (JsonException e)
        {
            var path = string.IsNullOrEmpty(e.Path) || e.Path == "$" ? "" : $" at {e.Path}";
            throw new FormatException($"the request body does not have the expected shape{path}: {shape}.", e);
        }
    }
}
