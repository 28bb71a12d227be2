using DevRift.Hsm.Api.Hosting;

return await ApplianceProgram.RunAsync(args, Console.Out, Console.Error);
