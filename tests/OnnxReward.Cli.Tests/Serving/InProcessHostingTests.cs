using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OnnxReward.Hosting;
using static OnnxReward.Cli.Tests.Serving.ServingFixture;

namespace OnnxReward.Cli.Tests.Serving;

/// <summary>OnnxReward.Hosting as an application uses it: AddRewardModel + MapRewardModelEndpoints in its own
/// WebApplication, in process (TestServer), with options bound from configuration.</summary>
[NonParallelizable]
public class InProcessHostingTests
{
    private static async Task<WebApplication> App(Action<IServiceCollection> register, bool start = true)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        register(builder.Services);
        var app = builder.Build();
        app.MapRewardModelEndpoints();
        app.MapRewardModelHealthChecks();
        if (start)
            await app.StartAsync();
        return app;
    }

    [Test]
    public async Task AnApplicationScoresThroughTheRegisteredEndpointsAndTheProvider()
    {
        var gate = new ManualResetEventSlim();
        await using var app = await App(s => s.AddRewardModel(o =>
        {
            o.ModelFactory = () =>
            {
                gate.Wait(TimeSpan.FromSeconds(30));
                return TinyModel;
            };
            o.DisposeModel = false;
        }));
        var client = app.GetTestClient();
        var provider = app.Services.GetRequiredService<RewardModelProvider>();

        using (var loading = await client.GetAsync("/health"))
        {
            Assert.That(loading.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable), "Unhealthy until loaded");
            Assert.That(loading.Headers.RetryAfter?.Delta, Is.EqualTo(TimeSpan.FromSeconds(1)));
        }
        Assert.That(provider.State, Is.EqualTo(RewardModelState.Loading));
        gate.Set();
        await provider.Ready.WaitAsync(TimeSpan.FromSeconds(60));
        using (var ready = await client.GetAsync("/health"))
            Assert.That(ready.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        var conversation = Conversation.FromPromptResponse("What is 2+2?", "4");
        using var response = await client.PostAsJsonAsync("/v1/score", new { conversations = new[] { new { prompt = "What is 2+2?", response = "4" } } });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        AssertSame(json.GetProperty("results")[0], TinyModel.Score(conversation), "in-process /v1/score");

        // The same scorer serves code that injects the provider.
        var direct = await provider.Scorer!.ScoreAsync([conversation]);
        Assert.That(direct[0].Score, Is.EqualTo(TinyModel.Score(conversation).Score).Within(Tolerance));

        await app.StopAsync();
        Assert.That(provider.State, Is.EqualTo(RewardModelState.Stopped));
        Assert.That(provider.Scorer.AdmittedRows, Is.Zero, "drained");
        Assert.ThrowsAsync<ScorerBusyException>(() => provider.Scorer.ScoreAsync([conversation]), "a drained scorer takes no more work");
    }

    [Test]
    public async Task OptionsBindFromConfigurationAndBadValuesStopTheHostWithTheirMessage()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["OnnxReward:ModelDirectory"] = "/models/rm",
            ["OnnxReward:MaxBatchTokens"] = "4096",
            ["OnnxReward:MaxConversations"] = "512",
            ["OnnxReward:RequestTimeout"] = "00:00:30",
            ["OnnxReward:Truncation"] = "DropOldestTurns",
            ["OnnxReward:ServedModelName"] = "cfg-rm",
        }).Build();
        await using (var app = await App(s => s.AddRewardModel(config.GetSection(RewardModelHostingOptions.SectionName)), start: false))
        {
            var o = app.Services.GetRequiredService<IOptions<RewardModelHostingOptions>>().Value;
            Assert.That((o.ModelDirectory, o.MaxBatchTokens, o.MaxConversations, o.RequestTimeout, o.Truncation, o.ServedModelName),
                Is.EqualTo(("/models/rm", 4096, 512, TimeSpan.FromSeconds(30), TruncationPolicy.DropOldestTurns, "cfg-rm")));
        }

        var bad = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["OnnxReward:ModelDirectory"] = "/models/rm",
            ["OnnxReward:MaxConversations"] = "5000",
        }).Build();
        await using var failing = await App(s => s.AddRewardModel(bad.GetSection("OnnxReward")), start: false);
        var e = Assert.ThrowsAsync<OptionsValidationException>(() => failing.StartAsync());
        Assert.That(e!.Message, Does.Contain("--queue-capacity (2048) is below --max-conversations (5000)"));
    }

    [Test]
    public async Task AnApiKeyProtectsTheRoutesButNotHealth()
    {
        await using var app = await App(s => s.AddRewardModel(o =>
        {
            o.ModelFactory = () => TinyModel;
            o.DisposeModel = false;
            o.ApiKey = "k";
        }));
        await app.Services.GetRequiredService<RewardModelProvider>().Ready.WaitAsync(TimeSpan.FromSeconds(60));
        var client = app.GetTestClient();
        using var denied = await client.GetAsync("/info");
        Assert.That(denied.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(denied.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));
        using var health = await client.GetAsync("/health");
        Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        client.DefaultRequestHeaders.Authorization = new("Bearer", "k");
        using var info = await client.GetAsync("/info");
        Assert.That(info.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }
}
