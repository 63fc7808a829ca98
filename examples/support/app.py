"""A tiny application: fetch the prompt by label and render it with runtime variables.

It never names a version: moving the `production` label (or rolling out a new version) changes what it
serves, without a redeploy.
"""

from promptlane import Registry

registry = Registry()  # the project's configured registry: .promptlane/registry.db by default

for user in ("user-1", "user-2", "user-3"):
    prompt = registry.get(
        "support/reply",
        label="production",
        targeting_key=user,  # a rollout always gives the same user the same version
        fallback="You are a support assistant. Answer: {{ ticket }}",  # if the registry is unreachable
    )
    rendered = prompt.render(customer="Ana", ticket="Where is my order 123?", tier="pro")
    print(f"{user}: {prompt.name} v{prompt.version} via {prompt.label!r} (source: {prompt.source})")
print()
for message in rendered.messages:
    print(f"[{message['role']}] {message['content']}")
