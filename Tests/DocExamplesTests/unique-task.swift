import CeleriacCoordination
import CeleriacMessaging

enum UniqueTaskExample {
    static func buildReport(_ client: CeleriacClient) async throws {
        switch try await client.sendUnique(
            "reports.build", args: [42], key: "report:42", ttl: .seconds(3600),
            onDuplicate: .returnExisting)
        {
        case .sent(let result): print("sent", result.id)
        case .duplicate(let existingID): print("already queued or running as", existingID)
        }
        // onDuplicate: .refuse (the default) throws UniqueTaskError.duplicate(key:existingID:) instead.
    }
}
