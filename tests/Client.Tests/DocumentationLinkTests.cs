using System.Text.RegularExpressions;

namespace DevRift.Client.Tests;

/// <summary>The README and docs link only to files of the repository, and every one of them exists.</summary>
public sealed partial class DocumentationLinkTests
{
    public static TheoryData<string> Documents => ["README.md", "docs/api.md", "docs/architecture.md", "src/Client/README.md"];

    [Theory]
    [MemberData(nameof(Documents))]
    public void Every_link_points_at_a_file_in_the_repository(string document)
    {
        var root = RepositoryRoot();
        var path = Path.Combine(root, document);
        var links = LinkPattern().Matches(File.ReadAllText(path)).Select(m => m.Groups[1].Value).ToList();
        Assert.NotEmpty(links);

        foreach (var link in links)
        {
            Assert.False(Uri.TryCreate(link, UriKind.Absolute, out _), $"{document} links outside the repository: {link}");
            var target = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, link.Split('#')[0]));
            Assert.True(target.StartsWith(root, StringComparison.Ordinal), $"{document} links above the repository: {link}");
            Assert.True(File.Exists(target) || Directory.Exists(target), $"{document} links to a missing file: {link}");
        }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "DevRift.Hsm.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("DevRift.Hsm.sln not found above " + AppContext.BaseDirectory);
    }

    // Markdown links and images, outside code: [text](target).
    [GeneratedRegex(@"\]\(([^)\s]+)\)", RegexOptions.CultureInvariant)]
    private static partial Regex LinkPattern();
}
