using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using OnnxReward.Cli.Serving;
using OnnxReward.Hosting;

namespace OnnxReward.Cli.Tests.Serving;

/// <summary>
/// armorm-tiny loaded once (CPU) and shared by every server the serving tests start: real Kestrel on 127.0.0.1, a free
/// port each, so the protections are exercised through the same stack clients hit.
/// </summary>
internal static class ServingFixture
{
    private static readonly Lazy<RewardModel> SharedModel = new(() =>
        RewardModel.Load(CliRunner.ArmormTiny, new RewardModelOptions { ExecutionProvider = ExecutionProviderKind.Cpu }));

    public static RewardModel TinyModel => SharedModel.Value;

    /// <summary>Starts a server on a free loopback port with the shared model; waits until it is ready.</summary>
    public static async Task<Running> Start(Action<RewardModelHostingOptions>? configure = null, Func<RewardModel>? load = null, bool waitReady = true)
    {
        var settings = new ServeSettings { Urls = "http://127.0.0.1:0", MinimumLogLevel = Microsoft.Extensions.Logging.LogLevel.Warning };
        var server = ScoringServer.Create(settings, o =>
        {
            o.ModelFactory = load ?? (() => TinyModel);
            o.DisposeModel = false;                      // shared by every server of the run
            configure?.Invoke(o);
        });
        await server.StartAsync();
        if (waitReady)
            await server.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        var client = new HttpClient { BaseAddress = new Uri(server.Urls.Single()), Timeout = TimeSpan.FromSeconds(60) };
        return new Running(server, client);
    }

    internal sealed record Running(ScoringServer Server, HttpClient Client) : IAsyncDisposable
    {
        public Task<HttpResponseMessage> Post(string path, string json, string? bearer = null)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
            if (bearer is not null)
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
            return Client.SendAsync(request);
        }

        public async Task<(int Status, JsonElement Body)> PostJson(string path, string json, string? bearer = null)
        {
            using var response = await Post(path, json, bearer);
            var text = await response.Content.ReadAsStringAsync();
            return ((int)response.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
        }

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            await Server.StopAsync();
        }
    }

    public static string Json(object value) => JsonSerializer.Serialize(value);

    /// <summary>
    /// Tolerance between a served score and the library's for the same input scored alone. A row's result does not
    /// depend on its batch neighbours mathematically (causal attention, right padding), but ONNX Runtime's float32 GEMMs
    /// block differently for other batch shapes (B × T), so sums reorder: observed differences are ~2e-8 on scores of
    /// order 0.1-2. 1e-5 is far above that and far below any real error (a wrong row or position moves scores by ≥ 1e-2).
    /// JSON carries floats round-trippably, so serialization adds nothing.
    /// </summary>
    public const float Tolerance = 1e-5f;

    /// <summary>Asserts one HTTP result equals the library's <see cref="RewardScore"/> for the same input.</summary>
    public static void AssertSame(JsonElement result, RewardScore expected, string what)
    {
        Assert.That(result.GetProperty("score").GetSingle(), Is.EqualTo(expected.Score).Within(Tolerance), $"{what}: score");
        Assert.That(result.GetProperty("tokens").GetInt32(), Is.EqualTo(expected.TokenCount), $"{what}: tokens");
        var objectives = result.GetProperty("objectives").EnumerateObject().ToList();
        Assert.That(objectives.Select(o => o.Name), Is.EqualTo(expected.ObjectiveNames), $"{what}: objectives in the model's order");
        Assert.That(objectives.Select(o => o.Value.GetSingle()), Is.EqualTo(expected.RewardValues).Within(Tolerance), $"{what}: objective rewards");
        Assert.That(result.GetProperty("gating").EnumerateObject().Select(o => o.Value.GetSingle()), Is.EqualTo(expected.GatingValues).Within(Tolerance), $"{what}: gating");
        Assert.That(result.TryGetProperty("score_std", out _), Is.EqualTo(expected.ScoreStd is not null), $"{what}: score_std presence");
    }
}
