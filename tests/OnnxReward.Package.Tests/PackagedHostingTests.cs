using System.Net;
using System.Net.Http.Json;
using System.Reflection;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OnnxReward.Hosting;
using OnnxReward.Testing;

namespace OnnxReward.Package.Tests;

/// <summary>
/// An ASP.NET Core application as a user outside this repository writes it, against the OnnxReward and
/// OnnxReward.Hosting packages from the local feed: AddRewardModel + MapRewardModelEndpoints in its own
/// WebApplication, served in process (TestServer), scoring models/default over HTTP.
/// </summary>
[NonParallelizable]
public class PackagedHostingTests
{
    private static string DefaultModel => Path.Combine(SharedData.RepositoryRoot, "models", "default");

    /// <summary>What .ci/run packed (the csproj passes it in); the assemblies must be the packages' own.</summary>
    private static string ExpectedVersion =>
        typeof(PackagedHostingTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "OnnxRewardPackageVersion").Value!;

    [Test]
    public void TheLibraryAndHostingAssembliesComeFromThePackagesThatWerePacked()
    {
        foreach (var assembly in new[] { typeof(RewardModel).Assembly, typeof(RewardModelProvider).Assembly })
        {
            var informational = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()!.InformationalVersion;
            Assert.That(informational.Split('+')[0], Is.EqualTo(ExpectedVersion), assembly.GetName().Name);
        }
        // The deps file lists them as packages, not projects.
        var deps = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "OnnxReward.Package.Tests.deps.json"));
        using var doc = JsonDocument.Parse(deps);
        var libraries = doc.RootElement.GetProperty("libraries");
        foreach (var id in new[] { "OnnxReward", "OnnxReward.Hosting" })
            Assert.That(libraries.GetProperty($"{id}/{ExpectedVersion}").GetProperty("type").GetString(), Is.EqualTo("package"), id);
    }

    [Test]
    public async Task AnAspNetCoreAppScoresOverHttpWithThePackages()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddRewardModel(o => o.ModelDirectory = DefaultModel);
        await using var app = builder.Build();
        app.MapRewardModelEndpoints();
        app.MapRewardModelHealthChecks();
        await app.StartAsync();

        var provider = app.Services.GetRequiredService<RewardModelProvider>();
        await provider.Ready.WaitAsync(TimeSpan.FromSeconds(120));
        var client = app.GetTestClient();
        using (var health = await client.GetAsync("/health"))
            Assert.That(health.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        var pairs = new[]
        {
            ("How do I boil an egg?", "Simmer it for 9 minutes, then cool it in cold water."),
            ("What is the capital of France?", "Paris."),
            ("Write a haiku about rain.", "Soft rain on the roof / the garden drinks in silence / puddles hold the sky"),
        };
        using var response = await client.PostAsJsonAsync("/v1/score",
            new { conversations = pairs.Select(p => new { prompt = p.Item1, response = p.Item2 }).ToArray() });
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());
        var results = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("results");
        Assert.That(results.GetArrayLength(), Is.EqualTo(pairs.Length));

        // The same package's library, called directly, gives the same scores: HTTP adds no numerics. JSON carries the
        // float32 score in its shortest round-trip form, so equality is exact up to that (1e-6 relative).
        using var model = RewardModel.Load(DefaultModel);
        for (var i = 0; i < pairs.Length; i++)
        {
            var expected = model.Score(Conversation.FromPromptResponse(pairs[i].Item1, pairs[i].Item2));
            var got = results[i];
            Assert.That(got.GetProperty("score").GetSingle(), Is.EqualTo(expected.Score).Within(1e-6 * Math.Max(1, Math.Abs(expected.Score))), $"pair {i}");
            foreach (var (objective, reward) in expected.Objectives)
                Assert.That(got.GetProperty("objectives").GetProperty(objective).GetSingle(), Is.EqualTo(reward).Within(1e-5), $"pair {i} {objective}");
        }

        // An error is RFC 7807 problem details with the library's message.
        using var bad = await client.PostAsJsonAsync("/v1/score", new { conversations = new[] { new { prompt = "only a prompt" } } });
        Assert.That(bad.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That(bad.Content.Headers.ContentType?.MediaType, Is.EqualTo("application/problem+json"));

        await app.StopAsync();
    }
}
