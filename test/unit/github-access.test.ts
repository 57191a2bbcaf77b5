import { describe, expect, it } from "vitest";
import { restBaseUrl } from "../../src/github/github-access.js";

describe("GitHub's REST base URL", () => {
  it("is api.github.com without GHE_HOST", () => {
    expect(restBaseUrl()).toBe("https://api.github.com");
  });
  it("is the Enterprise Server's /api/v3 with GHE_HOST (and GHE_PROTOCOL)", () => {
    expect(restBaseUrl("ghe.example.com")).toBe("https://ghe.example.com/api/v3");
    expect(restBaseUrl("ghe.local:8080", "http")).toBe("http://ghe.local:8080/api/v3");
  });
});
