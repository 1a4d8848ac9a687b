console.log("ai-infra");
